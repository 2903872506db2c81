// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The checks of a move of a running guest (conformance/guest-migrate), from the save's
//! [`RunResult`] on the source host and the restore's on the destination.
//!
//! The guest's init prints these `@@GUEST` keys. At boot: `init <uptime>`, `cpus_online
//! <list>`, `features <the Features line of /proc/cpuinfo>`, `cpu1_midr <hex>`,
//! `cpu1_revidr <hex>` (sysfs), `impl <line>` (the kernel's messages about the target
//! implementations it was given). Then, every quarter second, `tick <n>` and `uptime
//! <seconds>`: the save pauses after `tick N`. After the last tick (on the destination):
//! `cpus_after <list>`, `cpu1_offline ok|failed`, `cpu1_online ok|failed`,
//! `online_after_online <list>`, `features_after`, `cpu1_midr_after`, `cpu1_revidr_after`
//! (read again after CPU 1 came back online: Linux reads a CPU's ID registers from the
//! hardware when it comes up), `variation <n>` (the kernel's "Unexpected variation"
//! warnings: a CPU whose ID registers differ from the boot CPU's), `impl_after <line>`, `end`.

use crate::checks::{Check, cpu_list};
use crate::report::{RunExit, RunResult};

/// The ticks the guest printed, in order.
pub fn ticks(r: &RunResult) -> Vec<u64> {
    r.guest_values("tick")
        .filter_map(|v| v.parse().ok())
        .collect()
}

/// The uptimes the guest printed with its ticks, in order.
pub fn uptimes(r: &RunResult) -> Vec<f64> {
    r.guest_values("uptime")
        .filter_map(|v| v.parse().ok())
        .collect()
}

fn consecutive(t: &[u64]) -> bool {
    t.windows(2).all(|w| w[1] == w[0] + 1)
}

fn value<'a>(r: &'a RunResult, key: &str) -> &'a str {
    r.guest_value(key).unwrap_or("(not printed)")
}

fn migration_line(r: &RunResult) -> String {
    r.migration.as_ref().map_or("-".into(), |m| {
        format!(
            "bundle {} bytes ({} of RAM), pause {} ms, save {} ms, restore {} ms",
            m.bundle_bytes,
            m.memory_bytes,
            m.pause_ms.map_or("-".into(), |v| v.to_string()),
            m.save_ms.map_or("-".into(), |v| v.to_string()),
            m.restore_ms.map_or("-".into(), |v| v.to_string()),
        )
    })
}

/// The checks of the save: the VM was paused and saved after `tick pause`, having printed
/// every tick before it, with every vCPU online.
pub fn save_checks(r: &RunResult, pause: u64) -> Vec<Check> {
    let t = ticks(r);
    let want: Vec<u64> = (1..=pause).collect();
    vec![
        Check::new(
            "saved",
            r.exit == RunExit::Saved,
            format!(
                "{}{}: {}",
                r.exit.name(),
                r.error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default(),
                migration_line(r)
            ),
        ),
        Check::new(
            "ticks_before",
            t == want,
            format!("ticks {t:?}, expected 1 to {pause}"),
        ),
        Check::new(
            "cpus_online",
            value(r, "cpus_online") == cpu_list(r.vcpus, None),
            format!("online {}", value(r, "cpus_online")),
        ),
    ]
}

/// The checks of the restore of `src`'s bundle, `dst`: the guest went on where it was
/// paused (the next tick, its clock without a jump), with every vCPU online, the same CPU
/// features and ID registers, a CPU taken off and on again, and powered off.
pub fn move_checks(src: &RunResult, dst: &RunResult) -> Vec<Check> {
    let mut checks = Vec::new();
    let prediction = dst
        .migration
        .as_ref()
        .and_then(|m| m.prediction.clone())
        .unwrap_or_else(|| "-".into());
    checks.push(Check::new(
        "restored",
        dst.exit == RunExit::Shutdown && prediction == "ok",
        format!(
            "{}{}; armfw on this host: {prediction}; {}",
            dst.exit.name(),
            dst.error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default(),
            migration_line(dst)
        ),
    ));
    let (before, after) = (ticks(src), ticks(dst));
    let last = before.last().copied();
    let first = after.first().copied();
    checks.push(Check::new(
        "ticks_continue",
        last.is_some() && first == last.map(|l| l + 1) && consecutive(&after),
        format!(
            "last tick saved {}, ticks after the restore {}",
            last.map_or("-".into(), |l| l.to_string()),
            match (after.first(), after.last()) {
                (Some(a), Some(b)) if consecutive(&after) => format!("{a} to {b}"),
                _ => format!("{after:?}"),
            }
        ),
    ));
    let (ua, ub) = (uptimes(src), uptimes(dst));
    let step = ua.windows(2).map(|w| w[1] - w[0]).fold(0.0f64, f64::max);
    match (ua.last(), ub.first()) {
        (Some(&a), Some(&b)) => {
            let gap = b - a;
            checks.push(Check::new(
                "clock",
                gap >= 0.0 && gap <= 2.0 * step + 1.0,
                format!(
                    "guest uptime {a:.2} s at the last tick saved, {b:.2} s at the first after: {gap:.2} s (the longest step before the save {step:.2} s)"
                ),
            ));
        }
        _ => checks.push(Check::new("clock", false, "no uptime on one side")),
    }
    let n = src.vcpus;
    let all = cpu_list(n, None);
    checks.push(Check::new(
        "cpus_online",
        value(dst, "cpus_after") == all,
        format!(
            "online after the restore {}, expected {all}",
            value(dst, "cpus_after")
        ),
    ));
    if n >= 2 {
        let ok = value(dst, "cpu1_offline") == "ok"
            && value(dst, "cpu1_online") == "ok"
            && value(dst, "online_after_online") == all;
        checks.push(Check::new(
            "hotplug",
            ok,
            format!(
                "CPU 1 offline {}, online {}, then online {}",
                value(dst, "cpu1_offline"),
                value(dst, "cpu1_online"),
                value(dst, "online_after_online")
            ),
        ));
    }
    let same = |k: &str, k2: &str| value(src, k) == value(dst, k2) && src.guest_value(k).is_some();
    checks.push(Check::new(
        "features",
        same("features", "features_after"),
        format!(
            "before: {}; after: {}",
            value(src, "features"),
            value(dst, "features_after")
        ),
    ));
    if n >= 2 {
        let variation = value(dst, "variation");
        checks.push(Check::new(
            "id_registers",
            same("cpu1_midr", "cpu1_midr_after")
                && same("cpu1_revidr", "cpu1_revidr_after")
                && variation == "0",
            format!(
                "CPU 1 MIDR_EL1 {} then {}, REVIDR_EL1 {} then {}, {variation} \"Unexpected variation\" warnings",
                value(src, "cpu1_midr"),
                value(dst, "cpu1_midr_after"),
                value(src, "cpu1_revidr"),
                value(dst, "cpu1_revidr_after"),
            ),
        ));
    }
    let implementations = |r: &RunResult| r.migration.as_ref().map_or(0, |m| m.implementations);
    let n = implementations(src);
    if n > 0 {
        // Linux 6.15+'s kvm_arm_target_impl_cpu_init() says how many it was given.
        let want = format!("Number of target implementation CPUs is {n}");
        let m = implementations(dst);
        checks.push(Check::new(
            "errata_cpus",
            value(src, "impl").ends_with(&want)
                && value(dst, "impl_after").ends_with(&want)
                && m == n,
            format!(
                "the guest at boot: \"{}\"; the engine after the move reports {m} implementations",
                value(src, "impl")
            ),
        ));
    }
    checks
}

/// The check of a move armfw refuses: the restore refused before creating anything.
pub fn refused_check(dst: &RunResult) -> Check {
    let prediction = dst
        .migration
        .as_ref()
        .and_then(|m| m.prediction.clone())
        .unwrap_or_else(|| "-".into());
    Check::new(
        "refused",
        dst.exit == RunExit::Refused && prediction.starts_with("refused"),
        format!("{}: {prediction}", dst.exit.name()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{FirmwareMode, Migration};

    fn run(exit: RunExit, lines: &[(&str, &str)]) -> RunResult {
        let mut r = RunResult::new(FirmwareMode::Kernel, 2);
        r.exit = exit;
        r.guest = lines
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        r
    }

    fn source() -> RunResult {
        let mut lines = vec![
            ("cpus_online", "0-1"),
            ("features", "fp asimd"),
            ("cpu1_midr", "0x410fd083"),
            ("cpu1_revidr", "0x0"),
        ];
        let ticks = ["1", "2", "3"];
        let ups = ["10.00", "10.30", "10.60"];
        for (t, u) in ticks.iter().zip(ups) {
            lines.push(("tick", t));
            lines.push(("uptime", u));
        }
        run(RunExit::Saved, &lines)
    }

    fn dest(first_tick: &str, first_up: &str) -> RunResult {
        let mut r = run(
            RunExit::Shutdown,
            &[
                ("tick", first_tick),
                ("uptime", first_up),
                ("tick", "5"),
                ("uptime", "11.2"),
                ("cpus_after", "0-1"),
                ("cpu1_offline", "ok"),
                ("cpu1_online", "ok"),
                ("online_after_online", "0-1"),
                ("features_after", "fp asimd"),
                ("cpu1_midr_after", "0x410fd083"),
                ("cpu1_revidr_after", "0x0"),
                ("variation", "0"),
            ],
        );
        r.migration = Some(Migration {
            prediction: Some("ok".into()),
            ..Migration::default()
        });
        r
    }

    fn failing(checks: &[Check]) -> Vec<&'static str> {
        checks.iter().filter(|c| !c.ok).map(|c| c.check).collect()
    }

    #[test]
    fn a_save_after_the_third_tick_passes() {
        assert_eq!(failing(&save_checks(&source(), 3)), Vec::<&str>::new());
        assert_eq!(failing(&save_checks(&source(), 4)), vec!["ticks_before"]);
    }

    #[test]
    fn a_restore_that_goes_on_with_the_next_tick_passes() {
        assert_eq!(
            failing(&move_checks(&source(), &dest("4", "10.9"))),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn a_repeated_or_skipped_tick_fails() {
        assert_eq!(
            failing(&move_checks(&source(), &dest("3", "10.9"))),
            vec!["ticks_continue"]
        );
        let mut skipped = dest("4", "10.9");
        skipped.guest[2].1 = "6".into();
        assert_eq!(
            failing(&move_checks(&source(), &skipped)),
            vec!["ticks_continue"]
        );
    }

    #[test]
    fn a_clock_that_jumped_fails() {
        // 30 s of host time between save and restore must not reach the guest.
        assert_eq!(
            failing(&move_checks(&source(), &dest("4", "40.6"))),
            vec!["clock"]
        );
    }

    #[test]
    fn other_id_registers_after_the_move_fail() {
        let mut d = dest("4", "10.9");
        d.guest[9].1 = "0x410fd034".into();
        assert_eq!(failing(&move_checks(&source(), &d)), vec!["id_registers"]);
        let mut d = dest("4", "10.9");
        d.guest[11].1 = "1".into();
        assert_eq!(failing(&move_checks(&source(), &d)), vec!["id_registers"]);
    }

    #[test]
    fn implementations_are_checked_where_the_engine_reported_them() {
        let mut src = source();
        src.migration = Some(Migration {
            implementations: 2,
            ..Migration::default()
        });
        src.guest.push((
            "impl".into(),
            "Number of target implementation CPUs is 2".into(),
        ));
        let mut d = dest("4", "10.9");
        d.guest.push((
            "impl_after".into(),
            "Number of target implementation CPUs is 2".into(),
        ));
        assert_eq!(failing(&move_checks(&src, &d)), vec!["errata_cpus"]);
        d.migration.as_mut().unwrap().implementations = 2;
        assert_eq!(failing(&move_checks(&src, &d)), Vec::<&str>::new());
        // Without implementations there is no such check.
        assert!(
            !move_checks(&source(), &d)
                .iter()
                .any(|c| c.check == "errata_cpus")
        );
    }

    #[test]
    fn a_refused_restore_is_the_refused_check() {
        let mut r = RunResult::new(FirmwareMode::Kernel, 2);
        r.exit = RunExit::Refused;
        r.migration = Some(Migration {
            prediction: Some("refused: MIDR_EL1".into()),
            ..Migration::default()
        });
        assert!(refused_check(&r).ok);
        assert!(!refused_check(&dest("4", "10.9")).ok);
    }
}
