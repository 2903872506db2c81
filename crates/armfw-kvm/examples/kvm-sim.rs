// SPDX-License-Identifier: Apache-2.0 OR MIT
//! kvm-sim: as `/init` of an emulated arm64 host, probes the host and runs every scenario
//! under `/armfw/` on real KVM. Output: `@@ARMFW <seq> <json>` records (first the probed
//! profile, then one result document per scenario), then `@@ARMFW-END <count>`.

#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
fn main() {
    sim::main();
}

#[cfg(not(all(target_os = "linux", target_arch = "aarch64")))]
fn main() {
    eprintln!("kvm-sim needs Linux on aarch64 (with /dev/kvm)");
    std::process::exit(2);
}

#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
mod sim {
    use std::ffi::CString;
    use std::io::Write;

    use armfw::scenario::{self, Backend};
    use armfw_kvm::scenario::KvmBackend;

    struct Out(usize);

    impl Out {
        fn record(&mut self, json: &str) {
            let line = format!("@@ARMFW {} {}\n", self.0, json);
            // One write per line, so that kernel messages cannot split a record.
            let _ = std::io::stdout().lock().write_all(line.as_bytes());
            self.0 += 1;
        }
    }

    fn mount(source: &str, target: &str, fstype: &str) {
        let (s, t, f) = (
            CString::new(source).unwrap_or_default(),
            CString::new(target).unwrap_or_default(),
            CString::new(fstype).unwrap_or_default(),
        );
        // SAFETY: one mount system call with NUL-terminated strings that outlive it and no data.
        let _ = unsafe { libc::mount(s.as_ptr(), t.as_ptr(), f.as_ptr(), 0, std::ptr::null()) };
    }

    pub fn main() {
        let pid1 = std::process::id() == 1;
        if pid1 {
            mount("proc", "/proc", "proc");
            mount("sysfs", "/sys", "sysfs");
            mount("devtmpfs", "/dev", "devtmpfs");
            armfw_kvm::set_leak_on_drop(true);
        }
        let mut out = Out(0);
        match armfw_kvm::probe::probe(None, None) {
            Ok(p) => out.record(
                &serde_json::json!({"kind": "profile", "profile": p.to_json()}).to_string(),
            ),
            Err(e) => out
                .record(&serde_json::json!({"kind": "error", "error": e.to_string()}).to_string()),
        }
        let mut files: Vec<_> = std::fs::read_dir("/armfw")
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        match KvmBackend::new() {
            Ok(mut backend) => {
                for f in files {
                    let text = std::fs::read_to_string(&f).unwrap_or_default();
                    let stem = f.file_stem().and_then(|s| s.to_str());
                    match scenario::parse(&text, stem) {
                        Ok(s) => {
                            let doc = scenario::run(&s, &mut backend as &mut dyn Backend);
                            out.record(&serde_json::json!({"kind": "document", "document": doc.to_json()}).to_string());
                        }
                        Err(e) => out.record(&serde_json::json!({"kind": "error", "file": f.display().to_string(), "error": e.to_string()}).to_string()),
                    }
                }
            }
            Err(e) => out
                .record(&serde_json::json!({"kind": "error", "error": e.to_string()}).to_string()),
        }
        let _ = std::io::stdout()
            .lock()
            .write_all(format!("@@ARMFW-END {}\n", out.0).as_bytes());
        if pid1 {
            // SAFETY: one reboot system call; PSCI SYSTEM_OFF makes QEMU exit.
            unsafe { libc::reboot(libc::RB_POWER_OFF) };
        }
    }
}
