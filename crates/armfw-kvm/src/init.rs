//! What a program needs when it is `/init` (PID 1) of a minimal arm64 host: the pseudo
//! file systems, the kernel command line, and powering the machine off at the end.
//!
//! The harness boots Debian's arm64 kernels under QEMU with an initramfs whose `/init` is a
//! static program (`armfw-harness`, or `armfw-vmm`); nothing else runs there. What such a
//! program prints for the harness is armfw-harness's record protocol.

use std::ffi::CString;
use std::io::Write;

use crate::Errno;
use crate::sys::last_errno;

/// Whether this process is PID 1.
pub fn is_pid1() -> bool {
    std::process::id() == 1
}

fn mount(source: &str, target: &str, fstype: &str) -> Result<(), Errno> {
    let to_c = |s: &str| CString::new(s).map_err(|_| Errno::EINVAL);
    let (s, t, f) = (to_c(source)?, to_c(target)?, to_c(fstype)?);
    // SAFETY: one mount system call; the three NUL-terminated strings outlive it, and no
    // file-system data is passed.
    let rc = unsafe { libc::mount(s.as_ptr(), t.as_ptr(), f.as_ptr(), 0, std::ptr::null()) };
    if rc != 0 {
        let e = last_errno();
        // Already mounted (e.g. devtmpfs with CONFIG_DEVTMPFS_MOUNT) is fine.
        if e != Errno::EBUSY {
            return Err(e);
        }
    }
    Ok(())
}

/// Mounts /proc, /sys and /dev (devtmpfs, which holds /dev/kvm). The mount points must
/// exist in the initramfs.
pub fn mount_pseudo_filesystems() -> Result<(), (&'static str, Errno)> {
    mount("proc", "/proc", "proc").map_err(|e| ("/proc", e))?;
    mount("sysfs", "/sys", "sysfs").map_err(|e| ("/sys", e))?;
    mount("devtmpfs", "/dev", "devtmpfs").map_err(|e| ("/dev", e))?;
    Ok(())
}

/// The device of the virtio-serial port named `name` (`/dev/vportNpM`, found through
/// `/sys/class/virtio-ports/*/name`): how a program in an emulated host hands a file to the
/// machine outside (QEMU writes the port to a file there).
pub fn virtio_port(name: &str) -> Result<std::path::PathBuf, String> {
    let dir = std::fs::read_dir("/sys/class/virtio-ports")
        .map_err(|e| format!("/sys/class/virtio-ports: {e} (no virtio-serial device)"))?;
    for entry in dir.flatten() {
        let named = std::fs::read_to_string(entry.path().join("name")).unwrap_or_default();
        if named.trim() == name {
            return Ok(std::path::Path::new("/dev").join(entry.file_name()));
        }
    }
    Err(format!("no virtio-serial port named {name}"))
}

/// Load the kernel modules in `dir` (`*.ko`, in name order: give them a numeric prefix where
/// one needs another), for a kernel that has as modules what a program needs built in (6.1's
/// virtio-pci and virtio-console). A module already loaded is no error. The error names the
/// file.
pub fn load_modules(dir: &std::path::Path) -> Result<usize, String> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "ko"))
        .collect();
    files.sort();
    for f in &files {
        let file = std::fs::File::open(f).map_err(|e| format!("{}: {e}", f.display()))?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        // SAFETY: one finit_module system call on an open descriptor, with an empty
        // NUL-terminated parameter string that outlives it, and no flags.
        let rc = unsafe { libc::syscall(libc::SYS_finit_module, fd, c"".as_ptr(), 0) };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(format!("{}: finit_module: {e}", f.display()));
            }
        }
    }
    Ok(files.len())
}

/// The value of `key=value` on the kernel command line (`/proc/cmdline`), e.g.
/// `cmdline_value("armfw.cpu")`.
pub fn cmdline_value(key: &str) -> Option<String> {
    let cmdline = std::fs::read_to_string("/proc/cmdline").ok()?;
    cmdline_value_in(&cmdline, key)
}

fn cmdline_value_in(cmdline: &str, key: &str) -> Option<String> {
    cmdline.split_whitespace().find_map(|w| {
        w.strip_prefix(key)
            .and_then(|rest| rest.strip_prefix('='))
            .map(str::to_string)
    })
}

/// Powers the machine off (`reboot(RB_POWER_OFF)`: the kernel calls PSCI SYSTEM_OFF, and
/// QEMU exits) once the console has sent everything written to it: a `write` to the serial
/// console returns when the bytes are in the tty's buffer, and powering off at once can
/// lose the last lines (seen: a harness record without its end marker). Returns only if the
/// system call fails.
pub fn power_off() -> Errno {
    let _ = std::io::stdout().flush();
    // SAFETY: one tcdrain system call on the standard output descriptor; it only waits.
    // Not a tty (a pipe): it fails with ENOTTY, and there is nothing to wait for.
    let _ = unsafe { libc::tcdrain(libc::STDOUT_FILENO) };
    // SAFETY: one reboot system call with a constant command.
    unsafe { libc::reboot(libc::RB_POWER_OFF) };
    last_errno()
}

#[cfg(test)]
mod tests {
    use super::cmdline_value_in;

    #[test]
    fn cmdline_values() {
        let c = "console=ttyAMA0 quiet armfw.cpu=cortex-a72 armfw.cpuX=no armfw.mode=check\n";
        assert_eq!(
            cmdline_value_in(c, "armfw.cpu").as_deref(),
            Some("cortex-a72")
        );
        assert_eq!(cmdline_value_in(c, "armfw.mode").as_deref(), Some("check"));
        assert_eq!(cmdline_value_in(c, "armfw"), None);
        assert_eq!(cmdline_value_in(c, "console").as_deref(), Some("ttyAMA0"));
        assert_eq!(cmdline_value_in(c, "quiet"), None);
    }
}
