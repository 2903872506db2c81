// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The QEMU client harness (`conformance/qemu`), after the boots: each move's prediction
//! (`armfw check --qemu-stream`, run on the stream before the load) held against what QEMU
//! did, a matrix per QEMU version and host CPU model, and the count line.
//!
//! A row passes when the outcomes agree — armfw says QEMU loads it and the loaded guest's
//! next tick is the one after its last saved tick; armfw says QEMU refuses it and QEMU
//! exits without loading — and, where QEMU names the register its refusal is about (11.1),
//! QEMU names the register armfw names. A guest that loads and then dies, or skips ticks,
//! fails every prediction.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;

use armfw::qemu::report::QemuCheckJson;
use armfw_harness::records::QemuRecord;
use serde::Deserialize;

use crate::error::{Context, Result};

/// One move, as the script writes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Move {
    /// The Debian suite QEMU comes from.
    suite: String,
    /// QEMU's version string (from the save host's record).
    qemu: String,
    /// The hosts' CPU model.
    cpu: String,
    /// Source kernel series.
    from: String,
    /// Destination kernel series.
    to: String,
    /// The save record.
    save: Option<QemuRecord>,
    /// `armfw check --json`'s document.
    check: Option<QemuCheckJson>,
    /// Why the check gave no document.
    #[serde(default)]
    check_error: Option<String>,
    /// The load record.
    load: Option<QemuRecord>,
}

/// A row's verdict.
struct Verdict {
    pass: bool,
    /// The cell: what happened (and what armfw said when it differs).
    cell: String,
    /// Why it failed.
    why: Option<String>,
}

/// The register QEMU names first in `message`, in its own words.
fn named_in(message: &str) -> Option<&str> {
    [
        ("Could not set register ", [" to ", ": "]),
        (
            "handle_cpreg_only_in_incoming_stream: ",
            [" in the incoming", " in the incoming"],
        ),
    ]
    .into_iter()
    .filter_map(|(start, end)| {
        let i = message.find(start)?;
        let rest = &message[i + start.len()..];
        let stop = end
            .iter()
            .filter_map(|e| rest.find(e))
            .min()
            .unwrap_or(rest.len());
        Some((i, &rest[..stop]))
    })
    .min_by_key(|c| c.0)
    .map(|c| c.1)
}

/// Every register QEMU's walk warned about as missing from the stream (11.1), in order.
fn warned_missing(text: &str) -> Vec<&str> {
    const START: &str = "handle_cpreg_missing_in_incoming_stream: ";
    text.match_indices(START)
        .filter_map(|(i, _)| {
            let rest = &text[i + START.len()..];
            rest.find(" expected by the destination")
                .map(|e| &rest[..e])
        })
        .collect()
}

fn verdict(m: &Move) -> Verdict {
    let fail = |cell: String, why: String| Verdict {
        pass: false,
        cell,
        why: Some(why),
    };
    let last = match &m.save {
        Some(QemuRecord::Save {
            status, last_tick, ..
        }) if status == "completed" => *last_tick,
        Some(QemuRecord::Save { status, .. }) => {
            return fail("no save".into(), format!("the save {status}"));
        }
        _ => return fail("no save".into(), "no save record".into()),
    };
    let Some(check) = &m.check else {
        return fail(
            "no check".into(),
            m.check_error
                .clone()
                .unwrap_or_else(|| "armfw check gave no document".into()),
        );
    };
    let Some(QemuRecord::Load {
        outcome,
        first_tick,
        message,
        ..
    }) = &m.load
    else {
        return fail("no load".into(), "no load record".into());
    };
    let message = message.as_deref().unwrap_or("");
    let predicted_loads = check.result == "loads";
    // Where QEMU names the registers its walk passes over, armfw names the same ones.
    let said = check.messages.join("\n");
    if warned_missing(&said) != warned_missing(message) {
        return fail(
            format!("{outcome}*"),
            format!(
                "QEMU warned of {:?} missing, armfw of {:?}",
                warned_missing(message),
                warned_missing(&said)
            ),
        );
    }
    match (outcome.as_str(), predicted_loads) {
        ("continues", true) => {
            if *first_tick == Some(last + 1) {
                Verdict {
                    pass: true,
                    cell: "continues".into(),
                    why: None,
                }
            } else {
                fail(
                    "gap".into(),
                    format!("last saved tick {last}, first after the load {first_tick:?}"),
                )
            }
        }
        ("refused", false) => {
            let said = check.named_register.as_ref().map(|r| r.qemu_name.as_str());
            match (said, named_in(message)) {
                (Some(a), Some(q)) if a != q => fail(
                    "refused*".into(),
                    format!("QEMU names {q}, armfw {a}: {message}"),
                ),
                (Some(a), None) => fail(
                    "refused*".into(),
                    format!("armfw names {a}, QEMU names none: {message}"),
                ),
                (None, Some(q)) => fail(
                    "refused*".into(),
                    format!("QEMU names {q}, armfw none: {message}"),
                ),
                _ => Verdict {
                    pass: true,
                    cell: format!("refused ({})", check.rule.as_deref().unwrap_or("?")),
                    why: None,
                },
            }
        }
        (actual, _) => fail(
            format!("{actual}*"),
            format!(
                "armfw: {}{}; QEMU: {actual}{}",
                check.result,
                check
                    .rule
                    .as_deref()
                    .map_or(String::new(), |r| format!(" ({r})")),
                if message.is_empty() {
                    String::new()
                } else {
                    format!(": {message}")
                }
            ),
        ),
    }
}

/// `armfw-harness qemu-matrix ROWS`: the matrices, every failure, the count line; exit 1
/// if any row failed or there was none.
pub fn report(rows: &Path) -> Result<ExitCode> {
    let text = std::fs::read_to_string(rows)
        .with_context(|| format!("{}: cannot read", rows.display()))?;
    let mut moves = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let m: Move = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not a move", rows.display(), n + 1))?;
        moves.push(m);
    }
    let rows: Vec<(&Move, Verdict)> = moves.iter().map(|m| (m, verdict(m))).collect();
    // One matrix per QEMU version (oldest first) and CPU model.
    let groups: BTreeSet<(Vec<u32>, &str, &str, &str)> = rows
        .iter()
        .map(|(m, _)| {
            let version = m.qemu.strip_prefix("QEMU ").unwrap_or(&m.qemu);
            (
                series_key(version),
                m.suite.as_str(),
                m.qemu.as_str(),
                m.cpu.as_str(),
            )
        })
        .collect();
    let mut out = String::new();
    for (_, suite, qemu, cpu) in groups {
        let here: Vec<&(&Move, Verdict)> = rows
            .iter()
            .filter(|(m, _)| m.suite == suite && m.cpu == cpu)
            .collect();
        let series = |f: fn(&Move) -> &str| {
            let mut s: Vec<&str> = here.iter().map(|(m, _)| f(m)).collect();
            s.sort_by_key(|k| series_key(k));
            s.dedup();
            s
        };
        let froms = series(|m| m.from.as_str());
        let tos = series(|m| m.to.as_str());
        out.push_str(&format!(
            "\n{qemu} ({suite}), hosts -cpu {cpu}: from (row) -> to (column)\n\n"
        ));
        out.push_str(&format!("| from \\ to | {} |\n", tos.join(" | ")));
        out.push_str(&format!("|---|{}\n", "---|".repeat(tos.len())));
        for f in &froms {
            let cells: Vec<String> = tos
                .iter()
                .map(|t| {
                    here.iter()
                        .find(|(m, _)| m.from == *f && m.to == *t)
                        .map_or_else(|| "-".into(), |(_, v)| v.cell.clone())
                })
                .collect();
            out.push_str(&format!("| {f} | {} |\n", cells.join(" | ")));
        }
    }
    let failed: Vec<&(&Move, Verdict)> = rows.iter().filter(|(_, v)| !v.pass).collect();
    if !failed.is_empty() {
        out.push_str("\n(* armfw's prediction differs)\n");
        for (m, v) in &failed {
            out.push_str(&format!(
                "FAIL {} {} {} -> {}: {}\n",
                m.suite,
                m.cpu,
                m.from,
                m.to,
                v.why.as_deref().unwrap_or("")
            ));
        }
    }
    let passed = rows.len() - failed.len();
    out.push_str(&format!(
        "\nqemu: {passed} passed, {} failed\n",
        failed.len()
    ));
    print!("{out}");
    Ok(if failed.is_empty() && passed > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Kernel series in release order (6.1 < 6.12 < 7).
fn series_key(s: &str) -> Vec<u32> {
    s.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemus_register_names_are_found_in_its_messages() {
        assert_eq!(
            named_in(
                "qemu-system-aarch64: Could not set register fw reg 0 to 10003 (is 10001) | x"
            ),
            Some("fw reg 0")
        );
        assert_eq!(
            named_in(
                "a: handle_cpreg_only_in_incoming_stream: op0:3 op1:0 crn:10 crm:2 op2:2 in the incoming stream but unknown"
            ),
            Some("op0:3 op1:0 crn:10 crm:2 op2:2")
        );
        assert_eq!(
            named_in("Could not set register op0:3 op1:0 crn:0 crm:4 op2:1: unknown to KVM"),
            Some("op0:3 op1:0 crn:0 crm:4 op2:1")
        );
        assert_eq!(
            named_in("Failed to put registers after init: Invalid argument"),
            None
        );
    }

    fn row(check: &str, load: &str) -> Move {
        serde_json::from_str(&format!(
            r#"{{"suite": "sid", "qemu": "QEMU 11.1.3", "cpu": "neoverse-n1", "from": "7", "to": "6.12",
               "save": {{"type": "save", "status": "completed", "last_tick": 6, "stream_bytes": 1, "boot_ms": 1, "save_ms": 1}},
               "check": {check}, "load": {load}}}"#
        ))
        .unwrap()
    }

    fn check(result: &str, named: Option<&str>) -> String {
        let reg = |n: &str| {
            format!(r#"{{"id": "0x6030000000140000", "name": "PSCI_VERSION", "qemu_name": "{n}"}}"#)
        };
        let mut doc = serde_json::json!({
            "format": "armfw-qemu-check/1",
            "source": {"kind": "stream", "name": "s", "vcpus": 1, "cpregs": 182},
            "destination": {"profile": "p", "kernel": "k", "cpregs": 184},
            "policy": "qemu-11.1", "cpu": "host,pmu=off", "features": [], "result": result,
            "refused": [], "messages": [], "unmatched": [], "remedies": []
        });
        if result == "refused" {
            doc["rule"] = "cpreg_refused".into();
        }
        if let Some(n) = named {
            doc["named_register"] = serde_json::from_str(&reg(n)).unwrap();
        }
        doc.to_string()
    }

    #[test]
    fn a_row_passes_only_on_the_same_outcome_and_register() {
        let load = |outcome: &str, tick: &str, msg: &str| {
            format!(
                r#"{{"type": "load", "outcome": "{outcome}", {tick} "load_ms": 1, "message": "{msg}"}}"#
            )
        };
        let refused = load(
            "refused",
            "",
            "x: Could not set register fw reg 0 to 10003 (is 10001)",
        );
        assert!(verdict(&row(&check("refused", Some("fw reg 0")), &refused)).pass);
        assert!(!verdict(&row(&check("refused", Some("fw reg 1")), &refused)).pass);
        assert!(!verdict(&row(&check("refused", None), &refused)).pass);
        assert!(!verdict(&row(&check("loads", None), &refused)).pass);
        let next = load("continues", r#""first_tick": 7,"#, "");
        let gap = load("continues", r#""first_tick": 9,"#, "");
        let died = load("died", "", "kvm run failed Bad address");
        assert!(verdict(&row(&check("loads", None), &next)).pass);
        assert!(!verdict(&row(&check("loads", None), &gap)).pass);
        assert!(!verdict(&row(&check("loads", None), &died)).pass);
        assert!(!verdict(&row(&check("refused", None), &died)).pass);
    }

    #[test]
    fn the_walks_warnings_are_read_in_order() {
        let m = "q: warning: handle_cpreg_missing_in_incoming_stream: demuxed reg 6020000000110003 expected by the destination but not in the incoming stream: skip it | q: warning: handle_cpreg_missing_in_incoming_stream: op0:3 op1:0 crn:2 crm:0 op2:3 expected by the destination but not in the incoming stream: skip it";
        assert_eq!(
            warned_missing(m),
            [
                "demuxed reg 6020000000110003",
                "op0:3 op1:0 crn:2 crm:0 op2:3"
            ]
        );
    }

    #[test]
    fn kernel_series_sort_in_release_order() {
        let mut s = vec!["7", "6.12", "6.1"];
        s.sort_by_key(|k| series_key(k));
        assert_eq!(s, ["6.1", "6.12", "7"]);
        let mut q = vec!["11.1.3", "7.2.22", "10.0.13"];
        q.sort_by_key(|k| series_key(k));
        assert_eq!(q, ["7.2.22", "10.0.13", "11.1.3"]);
    }
}
