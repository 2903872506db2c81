// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The smoke program (conformance/boot-smoke, `armfw.mode=smoke`): proves armfw-kvm against
//! real KVM, one record per observation (free-form JSON objects with a `kind`, read by
//! people only).
//!
//! Kernel command line options: `armfw.cpu=NAME` (the QEMU CPU model, reported as is),
//! `armfw.close=0` (skip the timed close of one VM at the end).

use std::time::Instant;

use armfw_harness::records::Writer;
use armfw_kvm::{CallExit, Conduit, Errno, Error, TestVm, VmSpec, init, regs};
use kvm_bindings as kb;
use serde_json::{Map, Value, json};

const PSCI_VERSION: u64 = 0x8400_0000;
const PSCI_CPU_SUSPEND_64: u64 = 0xc400_0001;
const PSCI_CPU_OFF: u64 = 0x8400_0002;
const PSCI_CPU_ON_64: u64 = 0xc400_0003;
const PSCI_AFFINITY_INFO_64: u64 = 0xc400_0004;
const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;
const PSCI_SYSTEM_SUSPEND_64: u64 = 0xc400_000e;
const SMCCC_VERSION: u64 = 0x8000_0000;
const SIP_FN: u32 = 0x8200_0010;

type Out = Writer<std::io::Stdout>;

fn hex(v: u64) -> Value {
    json!(format!("{v:#x}"))
}

fn hexes(v: &[u64]) -> Value {
    Value::Array(v.iter().map(|&v| hex(v)).collect())
}

fn errno_json(e: Errno) -> Value {
    json!({"errno": e.name()})
}

fn unit_json(r: Result<(), Errno>) -> Value {
    match r {
        Ok(()) => json!({"ok": true}),
        Err(e) => errno_json(e),
    }
}

fn mp_json(state: u32) -> Value {
    json!(armfw_kvm::mp_state_name(state).unwrap_or("?"))
}

fn reg_value(r: Result<Vec<u8>, Errno>) -> Value {
    match r {
        Ok(b) => hex(u64::from_le_bytes(b.try_into().unwrap_or([0xff; 8]))),
        Err(e) => errno_json(e),
    }
}

fn call_json(r: &Result<CallExit, Error>) -> Value {
    match r {
        Ok(CallExit::Returned { x }) => json!({"x": hexes(x)}),
        Ok(CallExit::SystemEvent { kind, data, x }) => json!({
            "exit": "system_event",
            "type": armfw_kvm::system_event_name(*kind).unwrap_or("?"),
            "data": hexes(data),
            "x": hexes(x),
        }),
        Ok(CallExit::Hypercall { nr, flags, x }) => json!({
            "exit": "hypercall", "nr": hex(*nr), "flags": hex(*flags), "x": hexes(x),
        }),
        Ok(CallExit::Blocked { mp_state, x }) => {
            json!({"blocked": true, "mp_state": mp_json(*mp_state), "x": hexes(x)})
        }
        Err(e) => json!({"error": e.to_string()}),
    }
}

/// One call, recorded with its inputs and wall time.
fn call(out: &mut Out, vm: &mut TestVm, name: &str, vcpu: usize, conduit: Conduit, x: [u64; 4]) {
    let t = Instant::now();
    let r = vm.call(vcpu, conduit, x);
    let us = t.elapsed().as_micros();
    out.emit(&json!({
        "kind": "call", "name": name, "vcpu": vcpu,
        "conduit": if conduit == Conduit::Hvc { "hvc" } else { "smc" },
        "in": hexes(&x), "result": call_json(&r), "us": us,
    }));
}

fn mp_state(out: &mut Out, vm: &TestVm, name: &str, vcpu: usize) {
    let r = match vm.mp_state(vcpu) {
        Ok(s) => json!({"mp_state": mp_json(s)}),
        Err(e) => errno_json(e),
    };
    out.emit(&json!({"kind": "mp_state", "name": name, "vcpu": vcpu, "result": r}));
}

fn new_vm(out: &mut Out, name: &str, spec: &VmSpec) -> Option<TestVm> {
    let t = Instant::now();
    match TestVm::new(spec) {
        Ok(vm) => {
            out.emit(&json!({
                "kind": "vm", "name": name, "vcpus": vm.vcpu_count(),
                "preferred_target": vm.preferred_target(),
                "has_smccc_filter": unit_json(vm.has_smccc_filter()),
                "us": t.elapsed().as_micros(),
            }));
            Some(vm)
        }
        Err(e) => {
            out.emit(&json!({"kind": "vm", "name": name, "error": e.to_string()}));
            None
        }
    }
}

/// The whole program; `pid1` when it is the host's /init (which mounted the pseudo file
/// systems and powers off afterwards).
pub fn main(pid1: bool) {
    let t0 = Instant::now();
    let mut out = Writer::stdout();
    let uptime = std::fs::read_to_string("/proc/uptime")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_owned();
    out.emit(&json!({
        "kind": "start",
        "kernel": armfw_kvm::kernel_release().unwrap_or_else(|e| e.to_string()),
        "cpu": init::cmdline_value("armfw.cpu").unwrap_or_else(|| "unknown".into()),
        "pid1": pid1,
        "uptime_s": uptime,
    }));
    run(&mut out, pid1);
    out.emit(&json!({"kind": "done", "program_ms": t0.elapsed().as_millis()}));
    out.end();
}

fn run(out: &mut Out, pid1: bool) {
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
    let mut caps_json = Map::new();
    for (name, cap) in caps {
        let v = match armfw_kvm::check_extension(cap) {
            Ok(v) => json!(v),
            Err(e) => errno_json(e),
        };
        caps_json.insert(name.into(), v);
    }
    out.emit(&json!({"kind": "caps", "caps": caps_json}));

    // VM A: two vCPUs, vCPU 1 powered off.
    let spec = VmSpec {
        vcpus: 2,
        psci_0_2: true,
        power_off: vec![1],
        system_suspend: false,
        ..VmSpec::default()
    };
    let Some(mut a) = new_vm(out, "A", &spec) else {
        return;
    };
    match a.reg_list(0) {
        Ok(list) => {
            let fw: Vec<Value> = list
                .iter()
                .filter(|&&id| regs::is_firmware_reg(id))
                .map(|&id| json!({"id": hex(id), "value": reg_value(a.get_one_reg(0, id))}))
                .collect();
            out.emit(&json!({"kind": "fw_regs", "reg_list_len": list.len(), "regs": fw}));
        }
        Err(e) => out.emit(&json!({"kind": "fw_regs", "error": errno_json(e)})),
    }
    let mpidr1 = match a.get_u64(1, regs::MPIDR_EL1) {
        Ok(v) => hex(v),
        Err(e) => errno_json(e),
    };
    out.emit(&json!({"kind": "mpidr", "vcpu": 1, "result": mpidr1}));
    // BMAP_2 exists from 6.15 on: its absence must be ENOENT.
    let r = reg_value(a.get_one_reg(0, 0x6030_0000_0016_0003));
    out.emit(&json!({"kind": "get", "name": "VENDOR_HYP_BMAP_2", "result": r}));

    let hvc = Conduit::Hvc;
    call(out, &mut a, "PSCI_VERSION", 0, hvc, [PSCI_VERSION, 0, 0, 0]);
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
        hvc,
        [SMCCC_VERSION, 0, 0, 0],
    );
    let affinity = [PSCI_AFFINITY_INFO_64, 1, 0, 0];
    call(
        out,
        &mut a,
        "AFFINITY_INFO(1) before CPU_ON",
        0,
        hvc,
        affinity,
    );
    mp_state(out, &a, "vcpu1 before CPU_ON", 1);
    let cpu_on = [PSCI_CPU_ON_64, 1, 0x4000_1000, 0x55];
    call(out, &mut a, "CPU_ON(1)", 0, hvc, cpu_on);
    mp_state(out, &a, "vcpu1 after CPU_ON", 1);
    let r = match a.entry(1) {
        Ok((pc, x0)) => json!({"pc": hex(pc), "x0": hex(x0)}),
        Err(e) => errno_json(e),
    };
    out.emit(&json!({"kind": "entry", "vcpu": 1, "result": r}));
    call(
        out,
        &mut a,
        "AFFINITY_INFO(1) after CPU_ON",
        0,
        hvc,
        affinity,
    );
    call(out, &mut a, "CPU_ON(1) again", 0, hvc, cpu_on);
    call(
        out,
        &mut a,
        "CPU_OFF on vcpu1",
        1,
        hvc,
        [PSCI_CPU_OFF, 0, 0, 0],
    );
    call(
        out,
        &mut a,
        "AFFINITY_INFO(1) after CPU_OFF",
        0,
        hvc,
        affinity,
    );
    call(
        out,
        &mut a,
        "SYSTEM_OFF",
        0,
        hvc,
        [PSCI_SYSTEM_OFF, 0, 0, 0],
    );
    mp_state(out, &a, "vcpu0 after SYSTEM_OFF", 0);
    mp_state(out, &a, "vcpu1 after SYSTEM_OFF", 1);
    let version_junk = [PSCI_VERSION, 0x11, 0x22, 0x33];
    call(
        out,
        &mut a,
        "PSCI_VERSION on stopped vcpu0",
        0,
        hvc,
        version_junk,
    );

    // VM B: the SMCCC filter forwards one SiP function to userspace.
    let Some(mut b) = new_vm(out, "B", &VmSpec::default()) else {
        return;
    };
    let r = unit_json(b.set_smccc_filter(SIP_FN, 1, 2));
    out.emit(&json!({
        "kind": "smccc_filter", "base": hex(SIP_FN.into()), "count": 1, "action": 2, "result": r,
    }));
    let sip = u64::from(SIP_FN);
    call(out, &mut b, "forwarded SiP call", 0, hvc, [sip, 1, 2, 3]);
    call(
        out,
        &mut b,
        "forwarded SiP call",
        0,
        Conduit::Smc,
        [sip, 4, 5, 6],
    );
    let version = [PSCI_VERSION, 0, 0, 0];
    call(
        out,
        &mut b,
        "PSCI_VERSION after a forwarded call",
        0,
        hvc,
        version,
    );
    let t = Instant::now();
    let r = b.call(0, hvc, [sip, 7, 8, 9]);
    let resumed = match r {
        Ok(CallExit::Hypercall { .. }) => b.resume(0, [0x1234, 0, 0, 0xabcd]),
        other => other,
    };
    out.emit(&json!({
        "kind": "call", "name": "forwarded SiP call answered by resume",
        "result": call_json(&resumed), "us": t.elapsed().as_micros(),
    }));
    let r = unit_json(b.set_smccc_filter(0x8200_0020, 1, 1));
    out.emit(&json!({"kind": "smccc_filter", "name": "after the VM has run", "result": r}));

    // VM C: SYSTEM_SUSPEND with the capability.
    let spec = VmSpec {
        system_suspend: true,
        ..VmSpec::default()
    };
    if let Some(mut c) = new_vm(out, "C", &spec) {
        let suspend = [PSCI_SYSTEM_SUSPEND_64, 0x4000_2000, 0x66, 0];
        call(out, &mut c, "SYSTEM_SUSPEND", 0, hvc, suspend);
        mp_state(out, &c, "vcpu0 after SYSTEM_SUSPEND", 0);
        let r = unit_json(c.set_mp_state(0, armfw_kvm::MP_STATE_SUSPENDED));
        out.emit(&json!({"kind": "set_mp_state", "state": "SUSPENDED", "result": r}));
        call(
            out,
            &mut c,
            "PSCI_VERSION on suspended vcpu0",
            0,
            hvc,
            version_junk,
        );
    }

    // VM D: CPU_SUSPEND is a WFI that nothing wakes.
    if let Some(mut d) = new_vm(out, "D", &VmSpec::default()) {
        let suspend = [PSCI_CPU_SUSPEND_64, 0, 0x4000_3000, 0x77];
        call(out, &mut d, "CPU_SUSPEND", 0, hvc, suspend);
        call(
            out,
            &mut d,
            "PSCI_VERSION after CPU_SUSPEND",
            0,
            hvc,
            version,
        );
        // A guest exception must be an error, not a blocked call: after a returned call
        // the PC is on the stub's `b .`; 0xc further on lies a zero word (UDF #0).
        let r = d.get_u64(0, regs::PC).map(|pc| {
            let set = d.set_one_reg(0, regs::PC, &(pc + 0xc).to_le_bytes());
            (pc, set)
        });
        let result = match r {
            Ok((pc, Ok(()))) => {
                json!({"pc_before": hex(pc), "result": call_json(&d.resume(0, [0; 4]))})
            }
            Ok((_, Err(e))) | Err(e) => errno_json(e),
        };
        out.emit(&json!({"kind": "exception", "name": "UDF #0 through resume", "result": result}));
        call(
            out,
            &mut d,
            "PSCI_VERSION after the exception",
            0,
            hvc,
            version,
        );
    }

    // The cost of closing a VM that has run (A), unless armfw.close=0.
    if init::cmdline_value("armfw.close").as_deref() != Some("0") {
        armfw_kvm::set_leak_on_drop(false);
        let t = Instant::now();
        drop(a);
        out.emit(&json!({"kind": "close", "vm": "A", "ms": t.elapsed().as_millis()}));
        armfw_kvm::set_leak_on_drop(pid1);
    }
}
