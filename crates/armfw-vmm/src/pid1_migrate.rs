// SPDX-License-Identifier: Apache-2.0 OR MIT
//! `armfw-vmm` as PID 1 for one half of a move of a running guest
//! (conformance/guest-migrate, `armfw.migrate=` on the host's command line).
//!
//! - `save`: boots the guest (the plan's first firmware mode, with the pool baseline of
//!   `armfw.migrate-baseline=` if given), pauses it after it printed `@@GUEST tick N`,
//!   writes the bundle to the virtio-serial port named `armfw-bundle` (the harness's file on
//!   the machine outside), and records the run and its checks.
//! - `restore`: restores `/armfw/bundle` (armfw's plan for this host decides first), runs
//!   it until the guest powers off, and checks it against the save's record, which the
//!   harness put in `/armfw/source.jsonl`.
//!
//! Each half runs in a child process (`armfw-vmm run`), as the runs of conformance/linux-guest.

use armfw_harness::records::VmmRecord;
use armfw_kvm::init;

use crate::movecheck::{move_checks, refused_check, save_checks};
use crate::pid1::{Records, check_record, guest_args, host_record, run_vmm};
use crate::plan::{MigrateRole, Plan};
use crate::report::{FirmwareMode, RunExit, RunResult};

/// The virtio-serial port's name.
pub const PORT_NAME: &str = "armfw-bundle";
/// Where the restore finds the bundle.
pub const BUNDLE: &str = "/armfw/bundle";
/// Where the restore finds the save's records.
pub const SOURCE: &str = "/armfw/source.jsonl";

/// The save's result, from its records.
fn saved_run() -> Result<RunResult, String> {
    let text = std::fs::read_to_string(SOURCE).map_err(|e| format!("{SOURCE}: {e}"))?;
    for line in text.lines() {
        if let Ok(VmmRecord::Migration { role, run }) = serde_json::from_str(line) {
            if role == MigrateRole::Save.name() {
                return serde_json::from_value(run).map_err(|e| format!("{SOURCE}: {e}"));
            }
        }
    }
    Err(format!("{SOURCE} has no save record"))
}

/// The half of the move the plan asks for, with its records.
pub(crate) fn run(plan: &Plan, rec: &mut Records) {
    let cpu = init::cmdline_value("armfw.cpu");
    let (host, _) = host_record(plan, cpu.as_deref());
    rec.emit(&host);
    let firmware = plan
        .firmwares
        .first()
        .copied()
        .unwrap_or(FirmwareMode::Kernel);
    let Some(role) = plan.migrate else { return };
    let error = |rec: &mut Records, error: String| rec.emit(&VmmRecord::Error { error });
    let result = match role {
        MigrateRole::Save => {
            let port = match init::virtio_port(PORT_NAME) {
                Ok(p) => p,
                Err(e) => return error(rec, e),
            };
            let mut args = guest_args(plan);
            args.extend([
                "--prefix".into(),
                "[save] ".into(),
                "--pause-at".into(),
                format!("tick={}", plan.pause_tick),
                "--save".into(),
                port.display().to_string(),
            ]);
            if let Some(dir) = &plan.baseline {
                args.extend(["--baseline".into(), dir.clone()]);
            }
            run_vmm(plan, firmware, cpu.as_deref(), &args)
        }
        MigrateRole::Restore => {
            let args: Vec<String> = ["--restore", BUNDLE, "--prefix", "[restore] "]
                .map(String::from)
                .to_vec();
            run_vmm(plan, firmware, cpu.as_deref(), &args)
        }
    };
    rec.emit(&VmmRecord::Migration {
        role: role.name().into(),
        run: serde_json::to_value(&result).unwrap_or_default(),
    });
    let checks = match role {
        MigrateRole::Save => save_checks(&result, plan.pause_tick),
        MigrateRole::Restore if result.exit == RunExit::Refused => vec![refused_check(&result)],
        MigrateRole::Restore => match saved_run() {
            Ok(src) => move_checks(&src, &result),
            Err(e) => return error(rec, e),
        },
    };
    for check in &checks {
        rec.emit(&check_record(result.firmware.name(), role.name(), check));
    }
}
