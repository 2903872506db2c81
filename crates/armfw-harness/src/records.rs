// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The record protocol between a program in an emulated host and the machine that booted it.
//!
//! The program prints each result as one console line `@@ARMFW <seq> <json>` (seq counts
//! from 0) and ends with `@@ARMFW-END <count>`, so that a cut or garbled console log is
//! never taken for a complete result. Kernel messages may surround the records: [`read`]
//! ignores everything before the marker on a line, lines without a marker, and carriage
//! returns.
//!
//! [`Writer`] writes the framing, [`read`] and [`read_as`] read it back; the payloads are
//! serde types, one enum per program: [`ConformanceRecord`] (conformance/run),
//! [`MigrationRecord`] (conformance/migrate) and [`VmmRecord`] (armfw-vmm's PID-1 mode,
//! conformance/linux-guest). The smoke program (conformance/boot-smoke) prints free-form
//! JSON objects that only a human reads.

use std::collections::BTreeMap;
use std::io::Write;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The marker before each record: `@@ARMFW <seq> <json>`.
pub const MARK: &str = "@@ARMFW";

/// The marker of the end: `@@ARMFW-END <count>`.
pub const END_MARK: &str = "@@ARMFW-END";

/// Numbered records on a console (see the module docs).
#[derive(Debug)]
pub struct Writer<W: Write> {
    out: W,
    count: usize,
}

impl Writer<std::io::Stdout> {
    /// Records on the standard output (the emulated host's console).
    pub fn stdout() -> Writer<std::io::Stdout> {
        Writer::new(std::io::stdout())
    }
}

impl<W: Write> Writer<W> {
    /// No records yet, written to `out`.
    pub fn new(out: W) -> Writer<W> {
        Writer { out, count: 0 }
    }

    /// Prints the next record as one line, in one write, so that kernel messages cannot
    /// split it. A console that cannot be written to is ignored: there is no one to tell.
    pub fn emit<T: Serialize + ?Sized>(&mut self, record: &T) {
        let json = serde_json::to_string(record).unwrap_or_else(|e| {
            // Only a map with non-string keys fails; none of the record types has one.
            serde_json::json!({"kind": "error", "error": format!("unserialisable record: {e}")})
                .to_string()
        });
        let line = format!("{MARK} {} {json}\n", self.count);
        let _ = self.out.write_all(line.as_bytes());
        let _ = self.out.flush();
        self.count += 1;
    }

    /// How many records were printed.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Prints the end marker, flushes, and gives the output back.
    pub fn end(mut self) -> W {
        let line = format!("{END_MARK} {}\n", self.count);
        let _ = self.out.write_all(line.as_bytes());
        let _ = self.out.flush();
        self.out
    }
}

/// Why a console log holds no complete set of records.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadError {
    /// A record's number is not the next one (a lost or garbled line).
    #[error("record {expected} missing (found {found})")]
    Missing {
        /// The number that should have come.
        expected: usize,
        /// What stood where the number should be.
        found: String,
    },
    /// No end marker: the program did not finish, or the log was cut.
    #[error("no end marker ({records} records)")]
    NoEnd {
        /// The records found.
        records: usize,
    },
    /// The end marker counts other records than were found.
    #[error("end marker says {end}, found {found}")]
    Count {
        /// The end marker's count.
        end: usize,
        /// The records found.
        found: usize,
    },
    /// A record is not JSON, or not a record of the kind asked for.
    #[error("record {seq}: {why}")]
    Payload {
        /// The record's number.
        seq: usize,
        /// What is wrong with it.
        why: String,
    },
}

/// The payloads (JSON text) of the records in a console log, in order; fails unless they are
/// numbered 0, 1, 2, ... without a gap and end with `@@ARMFW-END <count>` (see the module
/// docs). The payloads are not parsed: [`read_as`] parses them.
pub fn read(log: &str) -> Result<Vec<String>, ReadError> {
    let start = format!("{MARK} ");
    let end_mark = format!("{END_MARK} ");
    let mut out = Vec::new();
    let mut end = None;
    for raw in log.lines() {
        let line = raw.replace('\r', "");
        if let Some(j) = line.find(&end_mark) {
            end = Some(leading_number(&line[j + end_mark.len()..]));
            continue;
        }
        let Some(i) = line.find(&start) else {
            continue;
        };
        let rest = &line[i + start.len()..];
        let (seq, json) = rest.split_once(' ').unwrap_or(("", rest));
        if seq != out.len().to_string() {
            return Err(ReadError::Missing {
                expected: out.len(),
                found: seq.to_string(),
            });
        }
        out.push(json.to_string());
    }
    match end {
        None => Err(ReadError::NoEnd { records: out.len() }),
        Some(end) if end != out.len() => Err(ReadError::Count {
            end,
            found: out.len(),
        }),
        Some(_) => Ok(out),
    }
}

/// The records of a console log as `T`s (see [`read`]).
pub fn read_as<T: DeserializeOwned>(log: &str) -> Result<Vec<T>, ReadError> {
    read(log)?
        .iter()
        .enumerate()
        .map(|(seq, json)| {
            serde_json::from_str(json).map_err(|e| ReadError::Payload {
                seq,
                why: e.to_string(),
            })
        })
        .collect()
}

/// The number at the start of `s` (0 if there is none), as awk's `s + 0` reads it.
fn leading_number(s: &str) -> usize {
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or(0)
}

// ------------------------------------------------------------------------------------------
// QEMU as a KVM client (conformance/qemu).

/// A record of the QEMU client harness's in-host program.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum QemuRecord {
    /// The host and its QEMU (first).
    Host {
        /// The host's kernel release.
        kernel: String,
        /// The host's CPU model (`armfw.cpu=`).
        cpu: String,
        /// `qemu-system-aarch64 --version`'s first line.
        qemu: String,
    },
    /// QEMU saved its guest.
    Save {
        /// `completed`, `failed`, `exited` or `timeout`.
        status: String,
        /// The guest's last tick before `stop`.
        last_tick: u64,
        /// The stream's size.
        stream_bytes: u64,
        /// Milliseconds from QEMU's start to that tick.
        boot_ms: u64,
        /// Milliseconds from `stop` to the end of the migration.
        save_ms: u64,
        /// QEMU's last message, when it did not complete.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// QEMU loaded (or refused) a stream.
    Load {
        /// `refused` (QEMU exited before the VM was loaded), `continues` (the guest printed
        /// its next tick) or `died` (loaded, and the guest did not go on).
        outcome: String,
        /// The guest's first tick after `cont`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        first_tick: Option<u64>,
        /// Milliseconds from QEMU's start to the loaded VM (or its exit).
        load_ms: u64,
        /// QEMU's exit status, if it had exited.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit: Option<i32>,
        /// QEMU's messages (`qemu-system-aarch64: ...` lines): why, for a refusal or a
        /// death; its warnings, for a load that goes on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// The program could not run.
    Error {
        /// Why.
        error: String,
    },
}

// ------------------------------------------------------------------------------------------
// The conformance harness (conformance/run).

/// A record of the conformance harness's in-host program.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConformanceRecord {
    /// The host's probed profile (first).
    Profile {
        /// The profile, as `armfw probe` writes it.
        profile: Value,
    },
    /// One scenario file's outcome.
    Scenario(Box<ScenarioRecord>),
    /// The host cannot run scenarios at all.
    Error {
        /// Why.
        error: String,
    },
}

/// One scenario file run on real KVM and on the model (or why it was not).
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct ScenarioRecord {
    /// The scenario set (`project` is the repository's own).
    pub set: String,
    /// The file's name in the set.
    pub file: String,
    /// Why the file is not a scenario; then no documents follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Real KVM's result document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kvm: Option<Value>,
    /// The model's result document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<Value>,
    /// Where the two differ.
    #[serde(default)]
    pub mismatches: Vec<Mismatch>,
    /// The swap test (`--firmware armfw`), when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap: Option<Swap>,
}

/// One step whose results differ.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct Mismatch {
    /// The step's index.
    pub step: usize,
    /// Real KVM's result (in the swap test: KVM's own firmware).
    pub kvm: Value,
    /// The model's result (in the swap test: armfw's firmware on KVM).
    pub model: Value,
}

/// The swap test of one scenario: run with armfw's userspace firmware, or why not.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Swap {
    /// It ran.
    Ran {
        /// The result document with armfw's firmware.
        armfw: Value,
        /// Where it differs from KVM's own firmware's.
        mismatches: Vec<Mismatch>,
    },
    /// It did not run.
    Skipped {
        /// Why.
        skipped: String,
    },
}

// ------------------------------------------------------------------------------------------
// The real-migration harness (conformance/migrate).

/// A record of the real-migration harness's in-host program.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MigrationRecord {
    /// The host's probed profile (first, in every mode).
    Profile {
        /// The profile, as `armfw probe` writes it.
        profile: Value,
    },
    /// A saved VM (`save` mode).
    State(StateRecord),
    /// One restore and its prediction (`restore` mode).
    Row(Row),
    /// The mode failed.
    Error {
        /// Why.
        error: String,
    },
}

/// A VM's firmware state saved on a host, with what its guest saw.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct StateRecord {
    /// The profile name of the host that saved it.
    pub host: String,
    /// `default` (KVM's defaults) or `baseline` (the pool baseline applied at creation).
    pub config: String,
    /// The state file, as JSON.
    pub snapshot: Value,
    /// The guest-view calls' answers (x0..x3 per call, in hex).
    pub view: Vec<Vec<String>>,
}

/// One restore of a saved state, against armfw's prediction.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct Row {
    /// The host that saved the state.
    pub from: String,
    /// The host it was restored on.
    pub to: String,
    /// The saved VM's configuration.
    pub config: String,
    /// `strict` or `armfw`.
    pub policy: String,
    /// `ok` or `fail`.
    pub predicted: String,
    /// For a predicted failure: `STEP: ERRNO`, or `armfw refuses`.
    pub predicted_detail: Option<String>,
    /// `ok`, `fail` or `error`.
    pub real: String,
    /// For a real failure or error: what failed.
    pub detail: Option<String>,
    /// After a success: whether the guest saw the same firmware (`true`/`false`), or why
    /// the calls failed (a string); `null` otherwise.
    pub guest_view_same: Value,
    /// armfw's verdict.
    pub verdict: String,
    /// The verdict's reason, when it is not plain compatibility.
    pub why: Option<String>,
    /// For a state created with the pool's CPU baseline: whether the baseline covers the
    /// destination (armfw's plan must then restore it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covered: Option<bool>,
}

// ------------------------------------------------------------------------------------------
// armfw-vmm's PID-1 mode (conformance/linux-guest).

/// A record of armfw-vmm's PID-1 mode (flat objects with a `type`).
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum VmmRecord {
    /// The host and the plan (first).
    Host {
        /// The host's kernel release.
        kernel: String,
        /// The host's CPU model (`armfw.cpu=`).
        cpu: String,
        /// Whether the host's KVM has the SMCCC filter.
        smccc_filter: bool,
        /// The guest's vCPUs.
        vcpus: usize,
        /// The guest's RAM.
        memory_mib: u64,
        /// The firmware modes, in order.
        firmwares: Vec<String>,
        /// The actions, in order.
        actions: Vec<String>,
    },
    /// One guest run.
    Run(Box<VmmRun>),
    /// One check of a run (or of two runs: firmware `both`).
    Check {
        /// The firmware mode (`kernel`, `armfw` or `both`).
        firmware: String,
        /// The action.
        action: String,
        /// What was checked.
        check: String,
        /// `pass`, `fail` or `skip`.
        result: String,
        /// What was seen.
        detail: String,
    },
    /// One half of a move of a running guest (conformance/guest-migrate): `save` on the
    /// source host, `restore` on the destination; `run` is armfw-vmm's result of that run
    /// (its `--result` document, with the bundle's size and times).
    Migration {
        /// `save` or `restore`.
        role: String,
        /// armfw-vmm's result.
        run: Value,
    },
    /// The plan could not be read.
    Error {
        /// Why.
        error: String,
    },
}

/// One guest run of armfw-vmm.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct VmmRun {
    /// The firmware mode.
    pub firmware: String,
    /// The action.
    pub action: String,
    /// How the run ended.
    pub exit: String,
    /// The system event's data.
    pub exit_data: Vec<u64>,
    /// The vCPU that exited, for a system event.
    pub exit_vcpu: Option<usize>,
    /// What went wrong.
    pub error: Option<String>,
    /// Milliseconds to the first KVM_RUN.
    pub setup_ms: u64,
    /// Milliseconds from the first KVM_RUN to the guest init's first line.
    pub boot_to_init_ms: Option<u64>,
    /// The guest's uptime when its init started (seconds, as the guest printed it).
    pub guest_uptime_at_init: Option<String>,
    /// Milliseconds from the first KVM_RUN to the end.
    pub total_ms: u64,
    /// The calls answered in userspace.
    pub userspace_calls: u64,
    /// Those calls, by function.
    pub calls: BTreeMap<String, u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn written(records: &[ConformanceRecord]) -> String {
        let mut w = Writer::new(Vec::new());
        for r in records {
            w.emit(r);
        }
        String::from_utf8(w.end()).unwrap()
    }

    fn sample() -> Vec<ConformanceRecord> {
        vec![
            ConformanceRecord::Profile {
                profile: json!({"name": "linux-7.2.13-max"}),
            },
            ConformanceRecord::Scenario(Box::new(ScenarioRecord {
                set: "project".into(),
                file: "a.json".into(),
                error: None,
                kvm: Some(json!({"results": [1]})),
                model: Some(json!({"results": [2]})),
                mismatches: vec![Mismatch {
                    step: 0,
                    kvm: json!(1),
                    model: json!(2),
                }],
                swap: Some(Swap::Skipped {
                    skipped: "kernel: no SMCCC filter".into(),
                }),
            })),
            ConformanceRecord::Error {
                error: "no /dev/kvm".into(),
            },
        ]
    }

    #[test]
    fn records_round_trip_through_the_framing() {
        let records = sample();
        let log = written(&records);
        assert!(log.starts_with("@@ARMFW 0 {\"kind\":\"profile\""), "{log}");
        assert!(log.ends_with("@@ARMFW-END 3\n"), "{log}");
        assert_eq!(read_as::<ConformanceRecord>(&log).unwrap(), records);
    }

    #[test]
    fn migration_and_vmm_records_round_trip() {
        let m = vec![
            MigrationRecord::State(StateRecord {
                host: "h".into(),
                config: "default".into(),
                snapshot: json!({"version": 1}),
                view: vec![vec!["0x1".into(); 4]],
            }),
            MigrationRecord::Row(Row {
                from: "a".into(),
                to: "b".into(),
                config: "default".into(),
                policy: "strict".into(),
                predicted: "fail".into(),
                predicted_detail: Some("set PSCI_VERSION: EINVAL".into()),
                real: "fail".into(),
                detail: Some("set PSCI_VERSION: EINVAL".into()),
                guest_view_same: Value::Null,
                verdict: "incompatible".into(),
                why: None,
                covered: Some(true),
            }),
        ];
        let mut w = Writer::new(Vec::new());
        m.iter().for_each(|r| w.emit(r));
        let log = String::from_utf8(w.end()).unwrap();
        assert_eq!(read_as::<MigrationRecord>(&log).unwrap(), m);
        let v = vec![
            VmmRecord::Check {
                firmware: "armfw".into(),
                action: "reboot".into(),
                check: "run".into(),
                result: "skip".into(),
                detail: "no filter".into(),
            },
            VmmRecord::Migration {
                role: "save".into(),
                run: json!({"exit": "SAVED", "migration": {"bundle_bytes": 4096}}),
            },
        ];
        let mut w = Writer::new(Vec::new());
        v.iter().for_each(|r| w.emit(r));
        let log = String::from_utf8(w.end()).unwrap();
        assert!(log.starts_with("@@ARMFW 0 {\"type\":\"check\""), "{log}");
        assert_eq!(read_as::<VmmRecord>(&log).unwrap(), v);
    }

    #[test]
    fn qemu_records_round_trip() {
        let q = vec![
            QemuRecord::Host {
                kernel: "7.2.13+deb14-arm64".into(),
                cpu: "neoverse-n1".into(),
                qemu: "QEMU emulator version 10.0.13".into(),
            },
            QemuRecord::Load {
                outcome: "refused".into(),
                first_tick: None,
                load_ms: 900,
                exit: Some(1),
                message: Some(
                    "qemu-system-aarch64: Failed to load cpu:cpreg_vmstate_array_len".into(),
                ),
            },
        ];
        let mut w = Writer::new(Vec::new());
        q.iter().for_each(|r| w.emit(r));
        let log = String::from_utf8(w.end()).unwrap();
        assert!(
            log.contains("{\"type\":\"load\",\"outcome\":\"refused\""),
            "{log}"
        );
        assert_eq!(read_as::<QemuRecord>(&log).unwrap(), q);
    }

    #[test]
    fn read_ignores_console_noise_around_the_records() {
        let log = "[    1.0] Booting\r\nnoise @@ARMFW 0 {\"a\":1}\r\n\
                   [    2.0] kvm: hyp mode\n\u{1b}[0m@@ARMFW 1 [2]\nmore\n\
                   [    3.0] x @@ARMFW-END 2\r\n[    4.0] reboot: Power down\n";
        assert_eq!(read(log).unwrap(), vec!["{\"a\":1}", "[2]"]);
    }

    #[test]
    fn read_without_end_marker_fails() {
        assert_eq!(
            read("@@ARMFW 0 {}\n@@ARMFW 1 {}\n"),
            Err(ReadError::NoEnd { records: 2 })
        );
    }

    #[test]
    fn read_with_a_gap_fails() {
        assert_eq!(
            read("@@ARMFW 0 {}\n@@ARMFW 2 {}\n@@ARMFW-END 2\n"),
            Err(ReadError::Missing {
                expected: 1,
                found: "2".into()
            })
        );
    }

    #[test]
    fn read_with_a_wrong_count_fails() {
        assert_eq!(
            read("@@ARMFW 0 {}\n@@ARMFW-END 3\n"),
            Err(ReadError::Count { end: 3, found: 1 })
        );
        assert_eq!(
            read("@@ARMFW 0 {}\n@@ARMFW-END x\n"),
            Err(ReadError::Count { end: 0, found: 1 })
        );
    }

    #[test]
    fn read_as_names_a_garbled_record() {
        let log = "@@ARMFW 0 {\"kind\":\"profile\",\"profile\":{}}\n@@ARMFW 1 {\"kind\":\"pro[ 5.1] usb\n@@ARMFW-END 2\n";
        let e = read_as::<ConformanceRecord>(log).unwrap_err();
        assert!(matches!(e, ReadError::Payload { seq: 1, .. }), "{e}");
    }
}
