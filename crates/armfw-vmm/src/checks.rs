// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The checks of one guest run, from its [`RunResult`]: did the guest boot with every vCPU
//! online, see PSCI, take a CPU off and on again, and end with the system event its init
//! asked for; with armfw's firmware, were the calls answered in userspace.
//!
//! The guest's init (conformance/linux-guest) prints these `@@GUEST` keys: `init <uptime>`,
//! `cpus_online <list>`, `cpu1_offline ok|failed`, `online_after_offline <list>`,
//! `cpu1_online ok|failed`, `online_after_online <list>`, `dmesg <line>` (the kernel's
//! PSCI and CPU1 messages), `action poweroff|reboot`, `end`.

use serde::Serialize;

use crate::plan::GuestAction;
use crate::report::{FirmwareMode, RunExit, RunResult};

/// One check's outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked (a short identifier).
    pub check: &'static str,
    /// Whether it held.
    pub ok: bool,
    /// What was seen.
    pub detail: String,
}

impl Check {
    /// A check named `check`.
    pub fn new(check: &'static str, ok: bool, detail: impl Into<String>) -> Check {
        Check {
            check,
            ok,
            detail: detail.into(),
        }
    }
}

/// The CPU list Linux prints for CPUs `0..n` without `without` (e.g. `0-1`, `0`, `0,2-3`).
pub fn cpu_list(n: usize, without: Option<usize>) -> String {
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for cpu in (0..n).filter(|&c| Some(c) != without) {
        match ranges.last_mut() {
            Some((_, end)) if *end + 1 == cpu => *end = cpu,
            _ => ranges.push((cpu, cpu)),
        }
    }
    ranges
        .iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The PSCI version from the kernel's "psci: PSCIvX.Y detected in firmware." line.
pub fn psci_version_line(result: &RunResult) -> Option<&str> {
    result
        .guest_values("dmesg")
        .find(|l| l.contains("psci: PSCIv") && l.contains("detected in firmware"))
}

/// The guest's `psci:` messages, with the one timing in them ("polled N ms") taken out:
/// what the guest can tell about its firmware.
pub fn psci_lines(result: &RunResult) -> Vec<String> {
    result
        .guest_values("dmesg")
        .filter_map(|l| l.find("psci: ").map(|at| &l[at..]))
        .map(|l| match l.find(" (polled") {
            Some(at) => l[..at].to_string(),
            None => l.to_string(),
        })
        .collect()
}

/// The checks of one run whose init ended with `action`.
pub fn run_checks(action: GuestAction, result: &RunResult) -> Vec<Check> {
    let n = result.vcpus;
    let mut checks = Vec::new();
    let uptime = result.guest_value("init").unwrap_or("?");
    checks.push(match result.boot_to_init_ms {
        Some(ms) => Check::new(
            "init",
            true,
            format!(
                "init reached {:.2} s after the first KVM_RUN (guest uptime {uptime} s)",
                ms as f64 / 1000.0
            ),
        ),
        None => Check::new(
            "init",
            false,
            format!(
                "no `@@GUEST init` line; the run ended {}{}",
                result.exit.name(),
                result
                    .error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
        ),
    });
    let want = cpu_list(n, None);
    let online = result.guest_value("cpus_online").unwrap_or("(not printed)");
    checks.push(Check::new(
        "cpus_online",
        online == want,
        format!("online {online}, expected {want}"),
    ));
    checks.push(match psci_version_line(result) {
        Some(line) => Check::new("psci", true, line),
        None => Check::new(
            "psci",
            false,
            "no \"psci: PSCIv... detected in firmware.\" message",
        ),
    });
    if n >= 2 {
        let rc = result
            .guest_value("cpu1_offline")
            .unwrap_or("(not printed)");
        let after = result
            .guest_value("online_after_offline")
            .unwrap_or("(not printed)");
        let want_off = cpu_list(n, Some(1));
        let killed = result
            .guest_values("dmesg")
            .find(|l| l.contains("psci: CPU1 killed"));
        checks.push(Check::new(
            "cpu_off",
            rc == "ok" && after == want_off && killed.is_some(),
            format!(
                "write 0 to cpu1/online: {rc}; online {after} (expected {want_off}); {}",
                killed.map_or("no \"psci: CPU1 killed\" message", |l| l)
            ),
        ));
        let rc = result.guest_value("cpu1_online").unwrap_or("(not printed)");
        let after = result
            .guest_value("online_after_online")
            .unwrap_or("(not printed)");
        let booted = result
            .guest_values("dmesg")
            .filter(|l| l.contains("CPU1: Booted secondary processor"))
            .count();
        checks.push(Check::new(
            "cpu_on",
            rc == "ok" && after == want && booted >= 2,
            format!(
                "write 1 to cpu1/online: {rc}; online {after} (expected {want}); \
                 \"CPU1: Booted secondary processor\" {booted} times (expected 2)"
            ),
        ));
    }
    let (name, want_exit) = match action {
        GuestAction::Poweroff => ("system_off", RunExit::Shutdown),
        GuestAction::Reboot => ("system_reset", RunExit::Reset),
    };
    let said = result.guest_value("action");
    let ended = result.guest_value("end").is_some();
    checks.push(Check::new(
        name,
        result.exit == want_exit && said == Some(action.name()) && ended,
        format!(
            "the VMM saw {}{} from vCPU {}; the guest's init: action {}{}",
            result.exit.name(),
            if result.exit_data.is_empty() {
                String::new()
            } else {
                format!(" data {:?}", result.exit_data)
            },
            result.exit_vcpu.map_or("-".to_string(), |v| v.to_string()),
            said.unwrap_or("(not printed)"),
            if ended { "" } else { ", no `end` line" }
        ),
    ));
    if result.firmware == FirmwareMode::Armfw {
        let calls = &result.userspace_calls;
        let has = |names: &[&str]| names.iter().any(|n| calls.contains_key(*n));
        let mut missing = Vec::new();
        let mut need: Vec<(&str, &[&str])> = vec![("PSCI_VERSION", &["PSCI_VERSION"])];
        if n >= 2 {
            need.push(("CPU_ON", &["CPU_ON", "CPU_ON64"]));
            need.push(("CPU_OFF", &["CPU_OFF"]));
            need.push(("AFFINITY_INFO", &["AFFINITY_INFO", "AFFINITY_INFO64"]));
        }
        need.push(match action {
            GuestAction::Poweroff => (
                "SYSTEM_OFF",
                &["SYSTEM_OFF", "SYSTEM_OFF2", "SYSTEM_OFF2_64"],
            ),
            GuestAction::Reboot => (
                "SYSTEM_RESET",
                &["SYSTEM_RESET", "SYSTEM_RESET2", "SYSTEM_RESET2_64"],
            ),
        });
        for (what, names) in need {
            if !has(names) {
                missing.push(what);
            }
        }
        let list = calls
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        checks.push(Check::new(
            "userspace_firmware",
            result.userspace_total() > 0 && missing.is_empty(),
            format!(
                "{} calls answered in userspace ({list}){}",
                result.userspace_total(),
                if missing.is_empty() {
                    String::new()
                } else {
                    format!("; never answered: {}", missing.join(", "))
                }
            ),
        ));
    }
    checks
}

/// Whether the guest saw the same firmware in two runs: the same `psci:` messages.
pub fn same_firmware(a: &RunResult, b: &RunResult) -> Check {
    let (la, lb) = (psci_lines(a), psci_lines(b));
    if la == lb && !la.is_empty() {
        Check::new(
            "same_psci_messages",
            true,
            format!(
                "{} and {}: the same {} psci messages",
                a.firmware,
                b.firmware,
                la.len()
            ),
        )
    } else {
        let first = la
            .iter()
            .zip(&lb)
            .find(|(x, y)| x != y)
            .map(|(x, y)| format!("`{x}` against `{y}`"))
            .unwrap_or_else(|| format!("{} against {} messages", la.len(), lb.len()));
        Check::new(
            "same_psci_messages",
            false,
            format!("{} and {} differ: {first}", a.firmware, b.firmware),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good(firmware: FirmwareMode, action: GuestAction) -> RunResult {
        let mut r = RunResult::new(firmware, 2);
        r.exit = match action {
            GuestAction::Poweroff => RunExit::Shutdown,
            GuestAction::Reboot => RunExit::Reset,
        };
        r.exit_data = vec![0];
        r.exit_vcpu = Some(0);
        r.boot_to_init_ms = Some(4200);
        for (k, v) in [
            ("init", "3.10"),
            ("cpus_online", "0-1"),
            ("cpu1_offline", "ok"),
            ("online_after_offline", "0"),
            ("cpu1_online", "ok"),
            ("online_after_online", "0-1"),
            ("dmesg", "psci: probing for conduit method from DT."),
            ("dmesg", "psci: PSCIv1.1 detected in firmware."),
            (
                "dmesg",
                "CPU1: Booted secondary processor 0x0000000001 [0x000f0510]",
            ),
            ("dmesg", "psci: CPU1 killed (polled 0 ms)"),
            (
                "dmesg",
                "CPU1: Booted secondary processor 0x0000000001 [0x000f0510]",
            ),
            ("action", action.name()),
            ("end", ""),
        ] {
            r.guest.push((k.into(), v.into()));
        }
        if firmware == FirmwareMode::Armfw {
            for (k, v) in [
                ("PSCI_VERSION", 1),
                ("CPU_ON64", 2),
                ("CPU_OFF", 1),
                ("AFFINITY_INFO64", 1),
                ("SYSTEM_OFF", 1),
                ("SYSTEM_RESET", 1),
            ] {
                r.userspace_calls.insert(k.into(), v);
            }
        }
        r
    }

    fn failed(checks: &[Check]) -> Vec<&'static str> {
        checks.iter().filter(|c| !c.ok).map(|c| c.check).collect()
    }

    #[test]
    fn test_cpu_lists_match_linux_format() {
        assert_eq!(cpu_list(2, None), "0-1");
        assert_eq!(cpu_list(2, Some(1)), "0");
        assert_eq!(cpu_list(1, None), "0");
        assert_eq!(cpu_list(4, Some(1)), "0,2-3");
    }

    #[test]
    fn test_good_kernel_poweroff_run_passes_six_checks() {
        let checks = run_checks(
            GuestAction::Poweroff,
            &good(FirmwareMode::Kernel, GuestAction::Poweroff),
        );
        assert_eq!(checks.len(), 6);
        assert_eq!(failed(&checks), Vec::<&str>::new());
    }

    #[test]
    fn test_good_armfw_reboot_run_passes_seven_checks() {
        let checks = run_checks(
            GuestAction::Reboot,
            &good(FirmwareMode::Armfw, GuestAction::Reboot),
        );
        assert_eq!(checks.len(), 7);
        assert_eq!(failed(&checks), Vec::<&str>::new());
    }

    #[test]
    fn test_reset_when_poweroff_was_asked_fails_system_off() {
        let mut r = good(FirmwareMode::Kernel, GuestAction::Poweroff);
        r.exit = RunExit::Reset;
        assert_eq!(
            failed(&run_checks(GuestAction::Poweroff, &r)),
            vec!["system_off"]
        );
    }

    #[test]
    fn test_one_cpu_online_fails_cpus_online() {
        let mut r = good(FirmwareMode::Kernel, GuestAction::Poweroff);
        r.guest[1].1 = "0".into();
        assert_eq!(
            failed(&run_checks(GuestAction::Poweroff, &r)),
            vec!["cpus_online"]
        );
    }

    #[test]
    fn test_armfw_run_without_cpu_on_in_userspace_fails_userspace_firmware() {
        let mut r = good(FirmwareMode::Armfw, GuestAction::Poweroff);
        r.userspace_calls.remove("CPU_ON64");
        let checks = run_checks(GuestAction::Poweroff, &r);
        assert_eq!(failed(&checks), vec!["userspace_firmware"]);
        assert!(
            checks
                .last()
                .unwrap()
                .detail
                .ends_with("never answered: CPU_ON")
        );
    }

    #[test]
    fn test_run_that_never_reached_init_fails_every_guest_check() {
        let mut r = RunResult::new(FirmwareMode::Kernel, 2);
        r.exit = RunExit::Timeout;
        assert_eq!(
            failed(&run_checks(GuestAction::Poweroff, &r)),
            vec![
                "init",
                "cpus_online",
                "psci",
                "cpu_off",
                "cpu_on",
                "system_off"
            ]
        );
    }

    #[test]
    fn test_same_firmware_ignores_the_polling_time() {
        let a = good(FirmwareMode::Kernel, GuestAction::Poweroff);
        let mut b = good(FirmwareMode::Armfw, GuestAction::Poweroff);
        b.guest[9].1 = "psci: CPU1 killed (polled 10 ms)".into();
        assert!(same_firmware(&a, &b).ok);
    }

    #[test]
    fn test_same_firmware_reports_a_different_version() {
        let a = good(FirmwareMode::Kernel, GuestAction::Poweroff);
        let mut b = good(FirmwareMode::Armfw, GuestAction::Poweroff);
        b.guest[7].1 = "psci: PSCIv1.0 detected in firmware.".into();
        let check = same_firmware(&a, &b);
        assert!(!check.ok);
        assert!(check.detail.contains("PSCIv1.0"));
    }
}
