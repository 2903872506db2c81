// SPDX-License-Identifier: Apache-2.0 OR MIT
//! kvm-smoke: proves armfw-kvm against real KVM.
//!
//! Built static for aarch64-unknown-linux-musl and run as `/init` of an initramfs by
//! `conformance/boot-smoke`; it also runs as an ordinary program on any arm64 Linux host
//! with /dev/kvm. As PID 1 it mounts proc, sysfs and devtmpfs itself, leaks its VMs instead
//! of closing them, and powers the machine off at the end.
//!
//! Output: one line per record, `@@ARMFW <seq> <json>`, then `@@ARMFW-END <count>`
//! (`extract_records` in conformance/lib.sh checks the numbering). Kernel command line
//! options: `armfw.cpu=NAME` (the QEMU CPU model, reported as is), `armfw.close=0` (skip
//! the timed close of one VM at the end).

#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
fn main() {
    smoke::main();
}

#[cfg(not(all(target_os = "linux", target_arch = "aarch64")))]
fn main() {
    eprintln!("kvm-smoke needs Linux on aarch64 (with /dev/kvm)");
    std::process::exit(2);
}

#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
mod smoke {
    use std::ffi::CString;
    use std::io::Write;
    use std::time::Instant;

    use armfw_kvm::{CallExit, Conduit, Errno, Error, TestVm, VmSpec, regs};
    use kvm_bindings as kb;

    const PSCI_VERSION: u64 = 0x8400_0000;
    const PSCI_CPU_SUSPEND_64: u64 = 0xc400_0001;
    const PSCI_CPU_OFF: u64 = 0x8400_0002;
    const PSCI_CPU_ON_64: u64 = 0xc400_0003;
    const PSCI_AFFINITY_INFO_64: u64 = 0xc400_0004;
    const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;
    const PSCI_SYSTEM_SUSPEND_64: u64 = 0xc400_000e;
    const SMCCC_VERSION: u64 = 0x8000_0000;
    const SIP_FN: u32 = 0x8200_0010;

    /// Numbered `@@ARMFW` records on stdout, each written with one write.
    struct Out {
        seq: u64,
    }

    impl Out {
        fn rec(&mut self, json: String) {
            let line = format!("@@ARMFW {} {json}\n", self.seq);
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(line.as_bytes());
            let _ = out.flush();
            self.seq += 1;
        }

        fn end(&self) {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(format!("@@ARMFW-END {}\n", self.seq).as_bytes());
            let _ = out.flush();
        }
    }

    fn hex(v: u64) -> String {
        format!("\"{v:#x}\"")
    }

    fn hexes(v: &[u64]) -> String {
        format!(
            "[{}]",
            v.iter().map(|&v| hex(v)).collect::<Vec<_>>().join(",")
        )
    }

    fn jstr(s: &str) -> String {
        let mut o = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => o.push_str("\\\""),
                '\\' => o.push_str("\\\\"),
                c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
                c => o.push(c),
            }
        }
        o.push('"');
        o
    }

    fn errno_json(e: Errno) -> String {
        format!("{{\"errno\":{}}}", jstr(&e.name()))
    }

    fn unit_json(r: Result<(), Errno>) -> String {
        match r {
            Ok(()) => "{\"ok\":true}".into(),
            Err(e) => errno_json(e),
        }
    }

    fn mp_json(state: u32) -> String {
        jstr(armfw_kvm::mp_state_name(state).unwrap_or("?"))
    }

    fn call_json(r: &Result<CallExit, Error>) -> String {
        match r {
            Ok(CallExit::Returned { x }) => format!("{{\"x\":{}}}", hexes(x)),
            Ok(CallExit::SystemEvent { kind, data, x }) => format!(
                "{{\"exit\":\"system_event\",\"type\":{},\"data\":{},\"x\":{}}}",
                jstr(armfw_kvm::system_event_name(*kind).unwrap_or("?")),
                hexes(data),
                hexes(x)
            ),
            Ok(CallExit::Hypercall { nr, flags, x }) => format!(
                "{{\"exit\":\"hypercall\",\"nr\":{},\"flags\":{},\"x\":{}}}",
                hex(*nr),
                hex(*flags),
                hexes(x)
            ),
            Ok(CallExit::Blocked { mp_state, x }) => {
                format!(
                    "{{\"blocked\":true,\"mp_state\":{},\"x\":{}}}",
                    mp_json(*mp_state),
                    hexes(x)
                )
            }
            Err(e) => format!("{{\"error\":{}}}", jstr(&e.to_string())),
        }
    }

    /// One call, recorded with its inputs and wall time.
    fn call(
        out: &mut Out,
        vm: &mut TestVm,
        name: &str,
        vcpu: usize,
        conduit: Conduit,
        x: [u64; 4],
    ) {
        let t = Instant::now();
        let r = vm.call(vcpu, conduit, x);
        let us = t.elapsed().as_micros();
        out.rec(format!(
            "{{\"kind\":\"call\",\"name\":{},\"vcpu\":{vcpu},\"conduit\":\"{}\",\"in\":{},\"result\":{},\"us\":{us}}}",
            jstr(name),
            if conduit == Conduit::Hvc { "hvc" } else { "smc" },
            hexes(&x),
            call_json(&r)
        ));
    }

    fn mp_state(out: &mut Out, vm: &TestVm, name: &str, vcpu: usize) {
        let r = match vm.mp_state(vcpu) {
            Ok(s) => format!("{{\"mp_state\":{}}}", mp_json(s)),
            Err(e) => errno_json(e),
        };
        out.rec(format!(
            "{{\"kind\":\"mp_state\",\"name\":{},\"vcpu\":{vcpu},\"result\":{r}}}",
            jstr(name)
        ));
    }

    fn new_vm(out: &mut Out, name: &str, spec: &VmSpec) -> Option<TestVm> {
        let t = Instant::now();
        match TestVm::new(spec) {
            Ok(vm) => {
                out.rec(format!(
                    "{{\"kind\":\"vm\",\"name\":{},\"vcpus\":{},\"preferred_target\":{},\"has_smccc_filter\":{},\"us\":{}}}",
                    jstr(name),
                    vm.vcpu_count(),
                    vm.preferred_target(),
                    unit_json(vm.has_smccc_filter()),
                    t.elapsed().as_micros()
                ));
                Some(vm)
            }
            Err(e) => {
                out.rec(format!(
                    "{{\"kind\":\"vm\",\"name\":{},\"error\":{}}}",
                    jstr(name),
                    jstr(&e.to_string())
                ));
                None
            }
        }
    }

    fn read(path: &str) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }

    fn cmdline_option(key: &str) -> Option<String> {
        read("/proc/cmdline").split_whitespace().find_map(|w| {
            w.strip_prefix(key)
                .and_then(|v| v.strip_prefix('='))
                .map(str::to_owned)
        })
    }

    fn mount(out: &mut Out, source: &str, target: &str, fstype: &str) {
        let (s, t, f) = (
            CString::new(source).expect("no NUL"),
            CString::new(target).expect("no NUL"),
            CString::new(fstype).expect("no NUL"),
        );
        // SAFETY: one mount system call with NUL-terminated strings that outlive it and no
        // data argument.
        let ret = unsafe { libc::mount(s.as_ptr(), t.as_ptr(), f.as_ptr(), 0, std::ptr::null()) };
        if ret != 0 {
            let e = Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
            out.rec(format!(
                "{{\"kind\":\"mount\",\"target\":{},\"result\":{}}}",
                jstr(target),
                errno_json(e)
            ));
        }
    }

    pub fn main() {
        let t0 = Instant::now();
        let mut out = Out { seq: 0 };
        let pid1 = std::process::id() == 1;
        if pid1 {
            mount(&mut out, "proc", "/proc", "proc");
            mount(&mut out, "sysfs", "/sys", "sysfs");
            mount(&mut out, "devtmpfs", "/dev", "devtmpfs");
            // Closing VMs can cost seconds under emulation; the machine powers off anyway.
            armfw_kvm::set_leak_on_drop(true);
        }
        let uptime = read("/proc/uptime")
            .split_whitespace()
            .next()
            .unwrap_or("?")
            .to_owned();
        out.rec(format!(
            "{{\"kind\":\"start\",\"kernel\":{},\"cpu\":{},\"pid1\":{pid1},\"uptime_s\":{}}}",
            jstr(&armfw_kvm::kernel_release().unwrap_or_else(|e| e.to_string())),
            jstr(&cmdline_option("armfw.cpu").unwrap_or_else(|| "unknown".into())),
            jstr(&uptime)
        ));
        run(&mut out);
        out.rec(format!(
            "{{\"kind\":\"done\",\"program_ms\":{}}}",
            t0.elapsed().as_millis()
        ));
        out.end();
        if pid1 {
            // Waits for the console to send the records, then PSCI SYSTEM_OFF makes QEMU exit.
            let _ = armfw_kvm::init::power_off();
        }
    }

    fn run(out: &mut Out) {
        let caps = [
            ("ARM_PSCI", kb::KVM_CAP_ARM_PSCI),
            ("ARM_PSCI_0_2", kb::KVM_CAP_ARM_PSCI_0_2),
            ("NR_VCPUS", kb::KVM_CAP_NR_VCPUS),
            ("MAX_VCPUS", kb::KVM_CAP_MAX_VCPUS),
            ("ARM_VM_IPA_SIZE", kb::KVM_CAP_ARM_VM_IPA_SIZE),
            ("ARM_SVE", kb::KVM_CAP_ARM_SVE),
            ("ARM_PTRAUTH_ADDRESS", kb::KVM_CAP_ARM_PTRAUTH_ADDRESS),
            ("ARM_PTRAUTH_GENERIC", kb::KVM_CAP_ARM_PTRAUTH_GENERIC),
            ("ARM_MTE", kb::KVM_CAP_ARM_MTE),
            ("SYSTEM_EVENT_DATA", kb::KVM_CAP_SYSTEM_EVENT_DATA),
            ("ARM_SYSTEM_SUSPEND", kb::KVM_CAP_ARM_SYSTEM_SUSPEND),
            (
                "ARM_SUPPORTED_REG_MASK_RANGES",
                kb::KVM_CAP_ARM_SUPPORTED_REG_MASK_RANGES,
            ),
            (
                "ARM_WRITABLE_IMP_ID_REGS",
                kb::KVM_CAP_ARM_WRITABLE_IMP_ID_REGS,
            ),
        ];
        let caps_json: Vec<String> = caps
            .iter()
            .map(|(name, cap)| match armfw_kvm::check_extension(*cap) {
                Ok(v) => format!("{}:{v}", jstr(name)),
                Err(e) => format!("{}:{}", jstr(name), errno_json(e)),
            })
            .collect();
        out.rec(format!(
            "{{\"kind\":\"caps\",\"caps\":{{{}}}}}",
            caps_json.join(",")
        ));

        // VM A: two vCPUs, vCPU 1 powered off.
        let spec = VmSpec {
            vcpus: 2,
            psci_0_2: true,
            power_off: vec![1],
            system_suspend: false,
        };
        let Some(mut a) = new_vm(out, "A", &spec) else {
            return;
        };
        match a.reg_list(0) {
            Ok(list) => {
                let fw: Vec<String> = list
                    .iter()
                    .filter(|&&id| regs::is_firmware_reg(id))
                    .map(|&id| {
                        let v = match a.get_one_reg(0, id) {
                            Ok(b) => hex(u64::from_le_bytes(b.try_into().unwrap_or([0xff; 8]))),
                            Err(e) => errno_json(e),
                        };
                        format!("{{\"id\":{},\"value\":{v}}}", hex(id))
                    })
                    .collect();
                out.rec(format!(
                    "{{\"kind\":\"fw_regs\",\"reg_list_len\":{},\"regs\":[{}]}}",
                    list.len(),
                    fw.join(",")
                ));
            }
            Err(e) => out.rec(format!(
                "{{\"kind\":\"fw_regs\",\"error\":{}}}",
                errno_json(e)
            )),
        }
        let mpidr1 = a.get_u64(1, regs::MPIDR_EL1);
        out.rec(format!(
            "{{\"kind\":\"mpidr\",\"vcpu\":1,\"result\":{}}}",
            match mpidr1 {
                Ok(v) => hex(v),
                Err(e) => errno_json(e),
            }
        ));
        // BMAP_2 exists from 6.15 on: its absence must be ENOENT.
        let r = match a.get_one_reg(0, 0x6030_0000_0016_0003) {
            Ok(b) => hex(u64::from_le_bytes(b.try_into().unwrap_or([0xff; 8]))),
            Err(e) => errno_json(e),
        };
        out.rec(format!(
            "{{\"kind\":\"get\",\"name\":\"VENDOR_HYP_BMAP_2\",\"result\":{r}}}"
        ));

        call(
            out,
            &mut a,
            "PSCI_VERSION",
            0,
            Conduit::Hvc,
            [PSCI_VERSION, 0, 0, 0],
        );
        call(
            out,
            &mut a,
            "PSCI_VERSION",
            0,
            Conduit::Smc,
            [PSCI_VERSION, 0, 0, 0],
        );
        call(
            out,
            &mut a,
            "SMCCC_VERSION",
            0,
            Conduit::Hvc,
            [SMCCC_VERSION, 0, 0, 0],
        );
        call(
            out,
            &mut a,
            "AFFINITY_INFO(1) before CPU_ON",
            0,
            Conduit::Hvc,
            [PSCI_AFFINITY_INFO_64, 1, 0, 0],
        );
        mp_state(out, &a, "vcpu1 before CPU_ON", 1);
        call(
            out,
            &mut a,
            "CPU_ON(1)",
            0,
            Conduit::Hvc,
            [PSCI_CPU_ON_64, 1, 0x4000_1000, 0x55],
        );
        mp_state(out, &a, "vcpu1 after CPU_ON", 1);
        let r = match a.entry(1) {
            Ok((pc, x0)) => format!("{{\"pc\":{},\"x0\":{}}}", hex(pc), hex(x0)),
            Err(e) => errno_json(e),
        };
        out.rec(format!("{{\"kind\":\"entry\",\"vcpu\":1,\"result\":{r}}}"));
        call(
            out,
            &mut a,
            "AFFINITY_INFO(1) after CPU_ON",
            0,
            Conduit::Hvc,
            [PSCI_AFFINITY_INFO_64, 1, 0, 0],
        );
        call(
            out,
            &mut a,
            "CPU_ON(1) again",
            0,
            Conduit::Hvc,
            [PSCI_CPU_ON_64, 1, 0x4000_1000, 0x55],
        );
        call(
            out,
            &mut a,
            "CPU_OFF on vcpu1",
            1,
            Conduit::Hvc,
            [PSCI_CPU_OFF, 0, 0, 0],
        );
        call(
            out,
            &mut a,
            "AFFINITY_INFO(1) after CPU_OFF",
            0,
            Conduit::Hvc,
            [PSCI_AFFINITY_INFO_64, 1, 0, 0],
        );
        call(
            out,
            &mut a,
            "SYSTEM_OFF",
            0,
            Conduit::Hvc,
            [PSCI_SYSTEM_OFF, 0, 0, 0],
        );
        mp_state(out, &a, "vcpu0 after SYSTEM_OFF", 0);
        mp_state(out, &a, "vcpu1 after SYSTEM_OFF", 1);
        call(
            out,
            &mut a,
            "PSCI_VERSION on stopped vcpu0",
            0,
            Conduit::Hvc,
            [PSCI_VERSION, 0x11, 0x22, 0x33],
        );

        // VM B: the SMCCC filter forwards one SiP function to userspace.
        let Some(mut b) = new_vm(out, "B", &VmSpec::default()) else {
            return;
        };
        let r = unit_json(b.set_smccc_filter(SIP_FN, 1, 2));
        out.rec(format!(
            "{{\"kind\":\"smccc_filter\",\"base\":{},\"count\":1,\"action\":2,\"result\":{r}}}",
            hex(SIP_FN.into())
        ));
        call(
            out,
            &mut b,
            "forwarded SiP call",
            0,
            Conduit::Hvc,
            [SIP_FN.into(), 1, 2, 3],
        );
        call(
            out,
            &mut b,
            "forwarded SiP call",
            0,
            Conduit::Smc,
            [SIP_FN.into(), 4, 5, 6],
        );
        call(
            out,
            &mut b,
            "PSCI_VERSION after a forwarded call",
            0,
            Conduit::Hvc,
            [PSCI_VERSION, 0, 0, 0],
        );
        let t = Instant::now();
        let r = b.call(0, Conduit::Hvc, [SIP_FN.into(), 7, 8, 9]);
        let resumed = match r {
            Ok(CallExit::Hypercall { .. }) => b.resume(0, [0x1234, 0, 0, 0xabcd]),
            other => other,
        };
        out.rec(format!(
            "{{\"kind\":\"call\",\"name\":\"forwarded SiP call answered by resume\",\"result\":{},\"us\":{}}}",
            call_json(&resumed),
            t.elapsed().as_micros()
        ));
        let r = unit_json(b.set_smccc_filter(0x8200_0020, 1, 1));
        out.rec(format!(
            "{{\"kind\":\"smccc_filter\",\"name\":\"after the VM has run\",\"result\":{r}}}"
        ));

        // VM C: SYSTEM_SUSPEND with the capability.
        let spec = VmSpec {
            system_suspend: true,
            ..VmSpec::default()
        };
        if let Some(mut c) = new_vm(out, "C", &spec) {
            call(
                out,
                &mut c,
                "SYSTEM_SUSPEND",
                0,
                Conduit::Hvc,
                [PSCI_SYSTEM_SUSPEND_64, 0x4000_2000, 0x66, 0],
            );
            mp_state(out, &c, "vcpu0 after SYSTEM_SUSPEND", 0);
            let r = unit_json(c.set_mp_state(0, armfw_kvm::MP_STATE_SUSPENDED));
            out.rec(format!(
                "{{\"kind\":\"set_mp_state\",\"state\":\"SUSPENDED\",\"result\":{r}}}"
            ));
            call(
                out,
                &mut c,
                "PSCI_VERSION on suspended vcpu0",
                0,
                Conduit::Hvc,
                [PSCI_VERSION, 0x11, 0x22, 0x33],
            );
        }

        // VM D: CPU_SUSPEND is a WFI that nothing wakes.
        if let Some(mut d) = new_vm(out, "D", &VmSpec::default()) {
            call(
                out,
                &mut d,
                "CPU_SUSPEND",
                0,
                Conduit::Hvc,
                [PSCI_CPU_SUSPEND_64, 0, 0x4000_3000, 0x77],
            );
            call(
                out,
                &mut d,
                "PSCI_VERSION after CPU_SUSPEND",
                0,
                Conduit::Hvc,
                [PSCI_VERSION, 0, 0, 0],
            );
            // A guest exception must be an error, not a blocked call: after a returned call
            // the PC is on the stub's `b .`; 0xc further on lies a zero word (UDF #0).
            let r = d.get_u64(0, regs::PC).map(|pc| {
                let set = d.set_one_reg(0, regs::PC, &(pc + 0xc).to_le_bytes());
                (pc, set)
            });
            let result = match r {
                Ok((pc, Ok(()))) => format!(
                    "{{\"pc_before\":{},\"result\":{}}}",
                    hex(pc),
                    call_json(&d.resume(0, [0; 4]))
                ),
                Ok((_, Err(e))) | Err(e) => errno_json(e),
            };
            out.rec(format!(
                "{{\"kind\":\"exception\",\"name\":\"UDF #0 through resume\",\"result\":{result}}}"
            ));
            call(
                out,
                &mut d,
                "PSCI_VERSION after the exception",
                0,
                Conduit::Hvc,
                [PSCI_VERSION, 0, 0, 0],
            );
        }

        // The cost of closing a VM that has run (A), unless armfw.close=0.
        if cmdline_option("armfw.close").as_deref() != Some("0") {
            armfw_kvm::set_leak_on_drop(false);
            let t = Instant::now();
            drop(a);
            out.rec(format!(
                "{{\"kind\":\"close\",\"vm\":\"A\",\"ms\":{}}}",
                t.elapsed().as_millis()
            ));
            armfw_kvm::set_leak_on_drop(std::process::id() == 1);
        }
    }
}
