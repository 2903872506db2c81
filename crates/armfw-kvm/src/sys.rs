// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The raw system interface: the ioctls that kvm-ioctls does not wrap, `uname`, and the one
//! place where an OS error becomes the core's [`Errno`].
//!
//! Each wrapper has kvm-ioctls' shape: check in safe code, make exactly one ioctl or system
//! call in an `unsafe` block under a `// SAFETY:` comment, and turn a failure into the
//! calling thread's errno.

use armfw::abi::Errno;
use kvm_bindings::{
    KVM_ARM_FEATURE_ID_RANGE, KVM_ARM_FEATURE_ID_RANGE_SIZE, KVMIO, kvm_arm_counter_offset,
    kvm_device_attr, kvm_reg_list, reg_mask_range,
};
use kvm_ioctls::{VcpuFd, VmFd};
use vmm_sys_util::ioctl::{ioctl_with_mut_ptr, ioctl_with_ref};

// KVM_GET_REG_LIST is called directly: kvm-bindings' RegList holds at most 500 ids
// (include/uapi/linux/kvm.h: _IOWR(KVMIO, 0xb0, struct kvm_reg_list)).
vmm_sys_util::ioctl_iowr_nr!(KVM_GET_REG_LIST, KVMIO, 0xb0, kvm_reg_list);

// KVM_GET_DEVICE_ATTR on a vCPU: kvm-ioctls has no vCPU getter (include/uapi/linux/kvm.h:
// _IOW(KVMIO, 0xe2, struct kvm_device_attr)).
vmm_sys_util::ioctl_iow_nr!(KVM_GET_DEVICE_ATTR, KVMIO, 0xe2, kvm_device_attr);

// KVM_ARM_GET_REG_WRITABLE_MASKS on a VM (6.7; arch/arm64/include/uapi/asm/kvm.h:
// _IOR(KVMIO, 0xb6, struct reg_mask_range) = 0x8040aeb6).
vmm_sys_util::ioctl_ior_nr!(KVM_ARM_GET_REG_WRITABLE_MASKS, KVMIO, 0xb6, reg_mask_range);

// KVM_ARM_SET_COUNTER_OFFSET on a VM (6.4; arch/arm64/include/uapi/asm/kvm.h:
// _IOW(KVMIO, 0xb5, struct kvm_arm_counter_offset) = 0x4010aeb5).
vmm_sys_util::ioctl_iow_nr!(
    KVM_ARM_SET_COUNTER_OFFSET,
    KVMIO,
    0xb5,
    kvm_arm_counter_offset
);

/// KVM_ARM_SET_COUNTER_OFFSET on `vm` with `reserved` zero: the offset of both the virtual
/// and the physical counter, after which counter writes through ONE_REG are ignored.
pub(crate) fn set_counter_offset(vm: &VmFd, offset: u64) -> Result<(), Errno> {
    let arg = kvm_arm_counter_offset {
        counter_offset: offset,
        reserved: 0,
    };
    // SAFETY: one KVM_ARM_SET_COUNTER_OFFSET ioctl on a VM fd; the kernel only reads the
    // 16-byte `arg`, which lives until the call returns.
    let ret = unsafe { ioctl_with_ref(vm, KVM_ARM_SET_COUNTER_OFFSET(), &arg) };
    if ret != 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// The number of masks of the feature-ID range (192: op0 3, op1 0/1/3, CRn 0, CRm 0-7,
/// op2 0-7).
pub(crate) const FEATURE_ID_MASKS: usize = KVM_ARM_FEATURE_ID_RANGE_SIZE as usize;

/// KVM_ARM_GET_REG_WRITABLE_MASKS of the feature-ID range on `vm`: mask `i` belongs to the
/// register (3, op1, 0, CRm, op2) with `i = op1' << 6 | CRm << 3 | op2` (op1' = 0, 1, 2 for
/// op1 = 0, 1, 3).
pub(crate) fn get_writable_masks(vm: &VmFd) -> Result<Vec<u64>, Errno> {
    let mut masks = vec![0u64; FEATURE_ID_MASKS];
    let range = reg_mask_range {
        addr: masks.as_mut_ptr() as u64,
        range: KVM_ARM_FEATURE_ID_RANGE,
        reserved: [0; 13],
    };
    // SAFETY: one KVM_ARM_GET_REG_WRITABLE_MASKS ioctl on a VM fd. `range.addr` points at
    // `masks`, 192 u64 that live until the call returns; the kernel writes at most
    // KVM_ARM_FEATURE_ID_RANGE_SIZE u64 there and only reads `range`.
    let ret = unsafe { ioctl_with_ref(vm, KVM_ARM_GET_REG_WRITABLE_MASKS(), &range) };
    if ret != 0 {
        return Err(last_errno());
    }
    Ok(masks)
}

/// The errno of a failed kvm-ioctls or vmm-sys-util call (`kvm_ioctls::Error` is
/// vmm-sys-util's `errno::Error`).
pub(crate) fn errno(e: vmm_sys_util::errno::Error) -> Errno {
    Errno(e.errno())
}

/// An error that is an errno: the core's, or vmm-sys-util's (kvm-ioctls').
pub(crate) trait ToErrno {
    /// The errno.
    fn to_errno(self) -> Errno;
}

impl ToErrno for Errno {
    fn to_errno(self) -> Errno {
        self
    }
}

impl ToErrno for vmm_sys_util::errno::Error {
    fn to_errno(self) -> Errno {
        errno(self)
    }
}

/// The calling thread's current errno, right after a failed system call.
pub(crate) fn last_errno() -> Errno {
    errno(vmm_sys_util::errno::Error::last())
}

/// The errno of a failed std call (0 for an error that did not come from the OS).
pub(crate) fn io_errno(e: &std::io::Error) -> Errno {
    Errno(e.raw_os_error().unwrap_or(0))
}

/// The OS's description of `errno` (strerror), as `std::io::Error` words it.
pub(crate) fn describe(errno: Errno) -> String {
    let text = std::io::Error::from_raw_os_error(errno.0).to_string();
    // "Invalid argument (os error 22)": the number is already in the errno's name.
    match text.rfind(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// KVM_GET_REG_LIST on `vcpu`: every register id, in KVM's order. First with room for the
/// number of ids last reported (0 at first), which fails with E2BIG and the number needed,
/// then again.
pub(crate) fn get_reg_list(vcpu: &VcpuFd) -> Result<Vec<u64>, Errno> {
    let mut n = 0;
    for _ in 0..4 {
        // struct kvm_reg_list: the number of ids, then room for that many.
        let mut buf = vec![0u64; n + 1];
        buf[0] = n as u64;
        // SAFETY: one KVM_GET_REG_LIST ioctl on a vCPU fd. `buf` is a struct kvm_reg_list
        // whose count (buf[0]) is the number of u64 that follow it in `buf`; the kernel
        // writes at most that many ids, and the count.
        let ret = unsafe { ioctl_with_mut_ptr(vcpu, KVM_GET_REG_LIST(), buf.as_mut_ptr()) };
        if ret == 0 {
            let count = usize::try_from(buf[0]).unwrap_or(usize::MAX).min(n);
            buf.truncate(count + 1);
            buf.remove(0);
            return Ok(buf);
        }
        let errno = last_errno();
        if errno != Errno::E2BIG {
            return Err(errno);
        }
        n = usize::try_from(buf[0]).map_err(|_| errno)?;
    }
    Err(Errno::E2BIG)
}

/// KVM_GET_DEVICE_ATTR of a u64 attribute on `vcpu`: the value KVM writes.
pub(crate) fn get_vcpu_attr_u64(vcpu: &VcpuFd, group: u32, attr: u64) -> Result<u64, Errno> {
    let mut value = 0u64;
    let attr = kvm_device_attr {
        group,
        attr,
        addr: &raw mut value as u64,
        flags: 0,
    };
    // SAFETY: one KVM_GET_DEVICE_ATTR ioctl on a vCPU fd; `attr.addr` points to `value`, a
    // u64 that outlives the call, and the attributes read through here are u64s.
    let ret = unsafe { ioctl_with_ref(vcpu, KVM_GET_DEVICE_ATTR(), &attr) };
    if ret != 0 {
        return Err(last_errno());
    }
    Ok(value)
}

/// The running kernel's release (`uname -r`).
pub(crate) fn uname_release() -> Result<String, Errno> {
    let mut uts = libc::utsname {
        sysname: [0; 65],
        nodename: [0; 65],
        release: [0; 65],
        version: [0; 65],
        machine: [0; 65],
        domainname: [0; 65],
    };
    // SAFETY: one uname system call, which fills the struct it is given.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return Err(last_errno());
    }
    // c_char is u8 on aarch64 Linux.
    let bytes: Vec<u8> = uts
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .copied()
        .collect();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_einval_drops_the_number() {
        assert_eq!(describe(Errno::EINVAL), "Invalid argument");
    }

    #[test]
    fn io_errno_of_an_os_error_is_its_number() {
        assert_eq!(
            io_errno(&std::io::Error::from_raw_os_error(libc::ENOENT)),
            Errno::ENOENT
        );
    }
}
