// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Debian's own QEMU as a KVM client inside an emulated host (conformance/qemu), as PID 1:
//! `armfw.mode=qemu-save` boots a guest with `qemu-system-aarch64 -accel kvm`, lets it print
//! its counter, saves it with QEMU's own migration and writes the stream to the
//! virtio-serial port named `armfw-stream`; `armfw.mode=qemu-load` starts QEMU with
//! `-incoming` on `/armfw/state`, and records what QEMU did: refused the stream (with its
//! message), loaded it and the guest went on counting (the first tick after the load), or
//! loaded it and the guest died.
//!
//! QEMU is driven through its human monitor on stdin/stdout (the replies are matched, not
//! the echo, which carries escape sequences); the guest's serial console goes to a file that
//! is read for its `@@GUEST tick N` lines. Recipe and pitfalls: docs/qemu.md.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use armfw_harness::records::{QemuRecord, Writer};

use crate::error::{Error, Result};

/// QEMU in the initramfs.
const QEMU: &str = "/usr/bin/qemu-system-aarch64";
/// The guest's kernel and initramfs.
const L2_KERNEL: &str = "/armfw/l2-Image";
const L2_INITRD: &str = "/armfw/l2-initrd.cpio";
/// Where the guest's console goes.
const SERIAL: &str = "/tmp/l2-serial.log";
/// Where a save writes the stream, and where a load reads it.
const SAVED: &str = "/tmp/state";
const INCOMING: &str = "/armfw/state";
/// The virtio-serial port the stream leaves the host by.
const PORT_NAME: &str = "armfw-stream";

type Records = Writer<std::io::Stdout>;

/// The in-host program of `mode` (`qemu-save` or `qemu-load`): its records, then the end
/// marker. Whether it ran to the end.
pub fn guest(mode: &str) -> bool {
    let mut rec = Writer::stdout();
    let ok = run(mode, &mut rec).unwrap_or_else(|e| {
        rec.emit(&QemuRecord::Error {
            error: crate::cmdline::one_line(&e.to_string()),
        });
        false
    });
    rec.end();
    ok
}

fn run(mode: &str, rec: &mut Records) -> Result<bool> {
    let version = Command::new(QEMU)
        .arg("--version")
        .output()
        .map_err(|e| Error::msg(format!("{QEMU}: {e}")))?;
    let version = String::from_utf8_lossy(&version.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    rec.emit(&QemuRecord::Host {
        kernel: armfw_kvm::kernel_release().unwrap_or_default(),
        cpu: armfw_kvm::init::cmdline_value("armfw.cpu").unwrap_or_default(),
        qemu: version,
    });
    let tick = armfw_kvm::init::cmdline_value("armfw.qemu-tick")
        .and_then(|v| v.parse().ok())
        .unwrap_or(6u64);
    match mode {
        "qemu-save" => save(tick, rec),
        "qemu-load" => load(rec),
        other => Err(Error::msg(format!("unknown armfw.mode '{other}'"))),
    }
}

/// A running QEMU: its monitor (stdin), everything it printed (stdout and stderr, read by
/// two threads), the child.
struct Qemu {
    child: Child,
    monitor: ChildStdin,
    out: Arc<Mutex<String>>,
}

impl Qemu {
    fn start(extra: &[&str]) -> Result<Qemu> {
        // The initramfs has no /tmp.
        std::fs::create_dir_all("/tmp").map_err(|e| Error::msg(format!("/tmp: {e}")))?;
        let _ = std::fs::remove_file(SERIAL);
        let mut child = Command::new(QEMU)
            .args([
                "-accel",
                "kvm",
                "-M",
                "virt,gic-version=3",
                "-cpu",
                "host,pmu=off",
                "-smp",
                "1",
                "-m",
                "128",
                "-nodefaults",
                "-no-user-config",
                "-no-reboot",
                "-display",
                "none",
                "-chardev",
            ])
            .arg(format!("file,id=ser,path={SERIAL}"))
            .args(["-serial", "chardev:ser", "-monitor", "stdio"])
            .args(["-kernel", L2_KERNEL, "-initrd", L2_INITRD])
            .args(["-append", "console=ttyAMA0 panic=-1 quiet"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::msg(format!("starting {QEMU}: {e}")))?;
        let out = Arc::new(Mutex::new(String::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let out = Arc::clone(&out);
            std::thread::spawn(move || {
                let mut r = BufReader::new(stream);
                let mut line = Vec::new();
                while r.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                    if let Ok(mut o) = out.lock() {
                        o.push_str(&String::from_utf8_lossy(&line));
                    }
                    line.clear();
                }
            });
        }
        let monitor = child
            .stdin
            .take()
            .ok_or_else(|| Error::msg("no monitor pipe"))?;
        Ok(Qemu {
            child,
            monitor,
            out,
        })
    }

    fn output(&self) -> String {
        self.out.lock().map(|o| o.clone()).unwrap_or_default()
    }

    fn exited(&mut self) -> Option<i32> {
        self.child
            .try_wait()
            .ok()
            .flatten()
            .map(|s| s.code().unwrap_or(-1))
    }

    /// Sends a monitor command and waits until QEMU's output after it contains one of
    /// `want` (the first found is returned), QEMU exits or `limit` runs out.
    fn command(&mut self, cmd: &str, want: &[&str], limit: Duration) -> Option<String> {
        self.command_until(cmd, limit, |new| {
            want.iter()
                .find(|w| new.contains(*w))
                .map(|w| (*w).to_string())
        })
    }

    /// Sends a monitor command and waits until `found` recognises QEMU's output after it,
    /// QEMU exits or `limit` runs out.
    fn command_until(
        &mut self,
        cmd: &str,
        limit: Duration,
        found: impl Fn(&str) -> Option<String>,
    ) -> Option<String> {
        let from = self.output().len();
        let _ = writeln!(self.monitor, "{cmd}");
        let _ = self.monitor.flush();
        let until = Instant::now() + limit;
        while Instant::now() < until {
            let out = self.output();
            let new = out.get(from..).unwrap_or_default();
            if let Some(w) = found(new) {
                return Some(w);
            }
            if self.exited().is_some() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    /// The last line of QEMU's output that is neither its prompt nor an echo.
    fn last_message(&self) -> String {
        self.output()
            .lines()
            .rev()
            .map(strip_escapes)
            .find(|l| !l.trim().is_empty() && !l.contains("(qemu)"))
            .unwrap_or_default()
    }
}

/// A line without its terminal escape sequences.
fn strip_escapes(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else if c != '\r' {
            out.push(c);
        }
    }
    out
}

/// The guest's ticks so far.
fn ticks() -> Vec<u64> {
    std::fs::read_to_string(SERIAL)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split("@@GUEST tick ").nth(1))
        .filter_map(|v| v.trim().parse().ok())
        .collect()
}

/// Waits until the guest printed tick `n` (or QEMU exited, or `limit` ran out).
fn wait_tick(q: &mut Qemu, n: u64, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if ticks().last().is_some_and(|&t| t >= n) {
            return true;
        }
        if q.exited().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn save(tick: u64, rec: &mut Records) -> Result<bool> {
    // A kernel with virtio-pci and virtio-console as modules (6.1) gets them in /armfw/modules.
    let modules = Path::new("/armfw/modules");
    if modules.is_dir() {
        armfw_kvm::init::load_modules(modules).map_err(Error::msg)?;
    }
    let mut port = armfw_kvm::init::virtio_port(PORT_NAME);
    for _ in 0..50 {
        if port.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        port = armfw_kvm::init::virtio_port(PORT_NAME);
    }
    let port = port.map_err(Error::msg)?;
    let t0 = Instant::now();
    let mut q = Qemu::start(&[])?;
    if !wait_tick(&mut q, tick, Duration::from_secs(240)) {
        return Err(Error::msg(format!(
            "the guest did not print tick {tick}: {}",
            q.last_message()
        )));
    }
    let booted_ms = millis(t0.elapsed());
    let t1 = Instant::now();
    q.command("stop", &["(qemu)"], Duration::from_secs(10));
    let last = ticks().last().copied().unwrap_or(0);
    q.command(
        &format!("migrate \"exec:cat > {SAVED}\""),
        &["(qemu)"],
        Duration::from_secs(10),
    );
    let mut status = "timeout".to_string();
    let until = Instant::now() + Duration::from_secs(120);
    while Instant::now() < until {
        // 7.2/10.0 print "Migration status: completed", 11.1 "Status:" and tabs.
        match q.command_until("info migrate", Duration::from_secs(5), |new| {
            new.lines().find_map(|l| {
                let l = strip_escapes(l);
                let words: Vec<&str> = l.split_whitespace().collect();
                let i = words
                    .iter()
                    .position(|w| w.eq_ignore_ascii_case("status:"))?;
                match words.get(i + 1) {
                    Some(&"completed") => Some("completed".to_string()),
                    Some(&"failed") => Some("failed".to_string()),
                    _ => None,
                }
            })
        }) {
            Some(s) => {
                status = if s.ends_with("completed") {
                    "completed"
                } else {
                    "failed"
                }
                .into();
                break;
            }
            None if q.exited().is_some() => {
                status = "exited".into();
                break;
            }
            None => {}
        }
    }
    let save_ms = millis(t1.elapsed());
    let _ = q.command("quit", &[], Duration::from_secs(5));
    let _ = q.child.wait();
    let bytes = std::fs::read(SAVED).unwrap_or_default();
    if status == "completed" {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&port)
            .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.flush()))
            .map_err(|e| Error::msg(format!("{}: {e}", port.display())))?;
    }
    rec.emit(&QemuRecord::Save {
        status: status.clone(),
        last_tick: last,
        stream_bytes: bytes.len() as u64,
        boot_ms: booted_ms,
        save_ms,
        message: (status != "completed").then(|| q.last_message()),
    });
    Ok(status == "completed")
}

fn load(rec: &mut Records) -> Result<bool> {
    if !Path::new(INCOMING).exists() {
        return Err(Error::msg(format!("{INCOMING}: no stream to load")));
    }
    let t0 = Instant::now();
    let incoming = format!("exec:cat {INCOMING}");
    let mut q = Qemu::start(&["-incoming", &incoming])?;
    // Loaded: the VM waits, paused; refused: QEMU exits with its message.
    let mut loaded = false;
    let until = Instant::now() + Duration::from_secs(180);
    while Instant::now() < until {
        // "paused (inmigrate)" while the stream is still being read.
        let loaded_status = |out: &str| {
            out.lines()
                .map(strip_escapes)
                .find(|l| l.contains("VM status: paused") && !l.contains("inmigrate"))
        };
        match q.command_until("info status", Duration::from_secs(3), loaded_status) {
            Some(_) => {
                loaded = true;
                break;
            }
            None if q.exited().is_some() => break,
            None => {}
        }
    }
    let load_ms = millis(t0.elapsed());
    if !loaded {
        let code = q.exited();
        let message = q
            .output()
            .lines()
            .map(strip_escapes)
            .filter(|l| l.contains("qemu-system-aarch64:"))
            .collect::<Vec<_>>()
            .join(" | ");
        rec.emit(&QemuRecord::Load {
            outcome: "refused".into(),
            first_tick: None,
            load_ms,
            exit: code,
            message: Some(if message.is_empty() {
                q.last_message()
            } else {
                message
            }),
        });
        let _ = q.child.kill();
        return Ok(true);
    }
    q.command("cont", &["(qemu)"], Duration::from_secs(10));
    let before = ticks().len();
    let until = Instant::now() + Duration::from_secs(60);
    let mut first = None;
    while Instant::now() < until && q.exited().is_none() {
        let t = ticks();
        if t.len() > before {
            first = t.get(before).copied();
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let outcome = if first.is_some() { "continues" } else { "died" };
    // QEMU's messages: its warnings on a load that goes on, why on one that dies.
    let m = q
        .output()
        .lines()
        .map(strip_escapes)
        .filter(|l| l.contains("qemu-system-aarch64:") || l.contains("kvm run failed"))
        .collect::<Vec<_>>()
        .join(" | ");
    let message = match (first.is_none(), m.is_empty()) {
        (true, true) => Some(q.last_message()),
        (_, false) => Some(m),
        (false, true) => None,
    };
    rec.emit(&QemuRecord::Load {
        outcome: outcome.into(),
        first_tick: first,
        load_ms,
        exit: q.exited(),
        message,
    });
    let _ = q.command("quit", &[], Duration::from_secs(5));
    let _ = q.child.kill();
    Ok(true)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_stripped() {
        assert_eq!(
            strip_escapes("\u{1b}[K(qemu) info st\u{1b}[D\r"),
            "(qemu) info st"
        );
    }
}
