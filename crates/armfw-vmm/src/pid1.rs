// SPDX-License-Identifier: Apache-2.0 OR MIT
//! `armfw-vmm` as PID 1 of an emulated arm64 host (conformance/linux-guest): mounts the
//! pseudo file systems, reads its [`Plan`] from the kernel command line, boots the guest
//! once per firmware mode and action, each run in a child process (`armfw-vmm run
//! --result`, so that every VM ends with its process), prints one `@@ARMFW` record per
//! run and per check, `@@ARMFW-END`, and powers the host off.
//!
//! The records are armfw-harness's [`VmmRecord`]s, framed by its [`Writer`]: one protocol,
//! one writer and one reader for every program in an emulated host.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use armfw_harness::records::{VmmRecord, VmmRun, Writer};
use armfw_kvm::init;

use crate::checks::{Check, run_checks, same_firmware};
use crate::plan::{GuestAction, Plan};
use crate::report::{FirmwareMode, RunResult};

/// Extra seconds a child gets beyond its own time limit before it is killed.
const KILL_GRACE_S: u64 = 30;

pub(crate) type Records = Writer<std::io::Stdout>;

pub(crate) fn check_record(firmware: &str, action: &str, check: &Check) -> VmmRecord {
    VmmRecord::Check {
        firmware: firmware.to_string(),
        action: action.to_string(),
        check: check.check.to_string(),
        result: if check.ok { "pass" } else { "fail" }.to_string(),
        detail: check.detail.clone(),
    }
}

/// PID 1's whole life: the runs of the plan, the records, power-off.
pub fn main() -> ExitCode {
    if let Err((what, e)) = init::mount_pseudo_filesystems() {
        println!("armfw-vmm: cannot mount {what}: {e}");
    }
    // The probe's scratch VMs are leaked, not closed (closing costs time under emulation).
    armfw_kvm::set_leak_on_drop(true);
    let mut rec = Writer::stdout();
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    match Plan::from_cmdline(&cmdline) {
        Ok(plan) if plan.migrate.is_some() => crate::pid1_migrate::run(&plan, &mut rec),
        Ok(plan) => run_plan(&plan, &mut rec),
        Err(e) => rec.emit(&VmmRecord::Error {
            error: e.to_string(),
        }),
    }
    rec.end();
    let e = init::power_off();
    println!("armfw-vmm: power off failed: {e}");
    ExitCode::from(1)
}

/// The host record: the kernel, the CPU model, whether KVM has the SMCCC filter, the plan.
pub(crate) fn host_record(plan: &Plan, cpu: Option<&str>) -> (VmmRecord, bool) {
    let filter = armfw_kvm::TestVm::new(&armfw_kvm::VmSpec::default())
        .map(|vm| {
            let has = vm.has_smccc_filter().is_ok();
            vm.leak();
            has
        })
        .unwrap_or(false);
    let record = VmmRecord::Host {
        kernel: armfw_kvm::kernel_release().unwrap_or_default(),
        cpu: cpu.unwrap_or_default().to_string(),
        smccc_filter: filter,
        vcpus: plan.vcpus,
        memory_mib: plan.memory_mib,
        firmwares: plan
            .firmwares
            .iter()
            .map(|f| f.name().to_string())
            .collect(),
        actions: plan.actions.iter().map(|a| a.name().to_string()).collect(),
    };
    (record, filter)
}

fn run_plan(plan: &Plan, rec: &mut Records) {
    let cpu = init::cmdline_value("armfw.cpu");
    let (host, filter) = host_record(plan, cpu.as_deref());
    rec.emit(&host);
    let mut results: Vec<(FirmwareMode, GuestAction, RunResult)> = Vec::new();
    for &firmware in &plan.firmwares {
        for &action in &plan.actions {
            if firmware == FirmwareMode::Armfw && !filter {
                rec.emit(&VmmRecord::Check {
                    firmware: firmware.name().to_string(),
                    action: action.name().to_string(),
                    check: "run".to_string(),
                    result: "skip".to_string(),
                    detail: "this kernel has no SMCCC filter (Linux before 6.4): armfw's firmware cannot be installed".to_string(),
                });
                continue;
            }
            let result = run_child(plan, firmware, action, cpu.as_deref());
            rec.emit(&VmmRecord::Run(Box::new(VmmRun {
                firmware: firmware.name().to_string(),
                action: action.name().to_string(),
                exit: result.exit.name().to_string(),
                exit_data: result.exit_data.clone(),
                exit_vcpu: result.exit_vcpu,
                error: result.error.clone(),
                setup_ms: result.setup_ms,
                boot_to_init_ms: result.boot_to_init_ms,
                guest_uptime_at_init: result.guest_value("init").map(str::to_string),
                total_ms: result.total_ms,
                userspace_calls: result.userspace_total(),
                calls: result.userspace_calls.clone(),
            })));
            for check in run_checks(action, &result) {
                rec.emit(&check_record(firmware.name(), action.name(), &check));
            }
            results.push((firmware, action, result));
        }
    }
    // The guest must not be able to tell the firmwares apart.
    for &action in &plan.actions {
        let find = |f: FirmwareMode| {
            results
                .iter()
                .find(|(rf, ra, _)| *rf == f && *ra == action)
                .map(|(_, _, r)| r)
        };
        if let (Some(kernel), Some(armfw)) = (find(FirmwareMode::Kernel), find(FirmwareMode::Armfw))
        {
            rec.emit(&check_record(
                "both",
                action.name(),
                &same_firmware(kernel, armfw),
            ));
        }
    }
}

/// One run, in a child process (`/proc/self/exe run ... --result`): its console lines are
/// passed on, its result line read back.
fn run_child(
    plan: &Plan,
    firmware: FirmwareMode,
    action: GuestAction,
    cpu: Option<&str>,
) -> RunResult {
    let mut args = guest_args(plan);
    args.extend(["--action".into(), action.name().into()]);
    args.extend(["--prefix".into(), format!("[{firmware}/{action}] ")]);
    run_vmm(plan, firmware, cpu, &args)
}

/// The guest the plan boots: `--kernel`, `--initrd`, `--vcpus`, `--memory`.
pub(crate) fn guest_args(plan: &Plan) -> Vec<String> {
    vec![
        "--kernel".into(),
        plan.kernel.clone(),
        "--initrd".into(),
        plan.initrd.clone(),
        "--vcpus".into(),
        plan.vcpus.to_string(),
        "--memory".into(),
        plan.memory_mib.to_string(),
    ]
}

/// `armfw-vmm run` with `args`, `--firmware`, `--timeout`, `--cpu` and `--result`, in a
/// child process killed if it outlives its time limit: its console lines are passed on, its
/// result read back.
pub(crate) fn run_vmm(
    plan: &Plan,
    firmware: FirmwareMode,
    cpu: Option<&str>,
    args: &[String],
) -> RunResult {
    let failed = |error: String| {
        let mut r = RunResult::new(firmware, plan.vcpus);
        r.error = Some(error);
        r
    };
    let exe = std::env::current_exe().unwrap_or_else(|_| "/init".into());
    let mut cmd = Command::new(exe);
    cmd.arg("run")
        .args(args)
        .args(["--firmware", firmware.name()])
        .args(["--timeout", &plan.timeout_s.to_string()])
        .arg("--result")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(cpu) = cpu {
        cmd.args(["--cpu", cpu]);
    }
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => return failed(format!("starting armfw-vmm run: {e}")),
    };
    let Some(stdout) = child.stdout.take() else {
        return failed("no pipe from armfw-vmm run".into());
    };
    let child = Arc::new(Mutex::new(child));
    // A child that outlives its own time limit is killed.
    let guard = {
        let child = Arc::clone(&child);
        let limit = Duration::from_secs(plan.timeout_s + KILL_GRACE_S);
        std::thread::spawn(move || {
            std::thread::sleep(limit);
            if let Ok(mut c) = child.lock() {
                if matches!(c.try_wait(), Ok(None)) {
                    let _ = c.kill();
                }
            }
        })
    };
    drop(guard);
    let mut result = None;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        match RunResult::from_line(&line) {
            Some(r) => result = Some(r),
            None => {
                let _ = writeln!(std::io::stdout().lock(), "{line}");
            }
        }
    }
    let status = child.lock().map(|mut c| c.wait());
    result.unwrap_or_else(|| {
        failed(format!(
            "armfw-vmm run printed no result (exit status {})",
            match status {
                Ok(Ok(s)) => s.to_string(),
                _ => "unknown".into(),
            }
        ))
    })
}
