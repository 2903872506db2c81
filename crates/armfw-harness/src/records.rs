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

use std::io::Write;

use serde::Serialize;
use serde::de::DeserializeOwned;

mod payloads;

pub use payloads::{
    ConformanceRecord, MigrationRecord, Mismatch, QemuRecord, Row, ScenarioRecord, StateRecord,
    Swap, VmmRecord, VmmRun,
};

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

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
