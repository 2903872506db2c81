//! Result documents: one per scenario, one result per step. A document is a serde type:
//! read with [`crate::json::from_str`] ([`ResultDocument::parse`]), written through
//! `Serialize` (`serde_json::to_string` is what `armfw sim` prints, `to_string_pretty` plus a
//! newline is what the harness records). A result is one `RawResult`: every key of every
//! result kind, in the order the format writes them, so one definition reads and writes all.

use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Value, json};

use crate::abi::Errno;
use crate::firmware::{SystemEventType, mp_state_from_name, mp_state_name};
use crate::json::{self, FieldError, Invalid, Number, Wide, hex_le_bytes};

/// What a `call` step gave.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallResult {
    /// The call returned to the guest.
    Returned {
        /// x0..x3 after the call.
        x: [u64; 4],
    },
    /// KVM exited with a system event.
    SystemEvent {
        /// `KVM_SYSTEM_EVENT_*` type (raw).
        kind: u32,
        /// `data[0..ndata]`.
        data: Vec<u64>,
        /// x0..x3 at the exit.
        x: [u64; 4],
    },
    /// KVM forwarded the call (`KVM_EXIT_HYPERCALL`).
    Hypercall {
        /// `hypercall.nr`.
        nr: u64,
        /// `hypercall.flags`.
        flags: u64,
    },
    /// The vCPU did not come back within the wait limit.
    Blocked {
        /// KVM_GET_MP_STATE after the interruption (raw).
        mp_state: u32,
        /// x0..x3 as KVM left them.
        x: [u64; 4],
    },
}

/// One step's result.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawResult")]
#[non_exhaustive]
pub enum StepResult {
    /// `{"regs": [...]}`.
    Regs(Vec<u64>),
    /// `{"value": v}`: the little-endian buffer.
    Value(Vec<u8>),
    /// `{"ok": true}`.
    Ok,
    /// `{"errno": "EINVAL"}`.
    Errno(Errno),
    /// A call's result.
    Call(CallResult),
    /// `{"pc": v, "x0": v}`.
    Entry {
        /// PC.
        pc: u64,
        /// x0.
        x0: u64,
    },
    /// `{"mp_state": "RUNNABLE"}` (raw value).
    MpState(u32),
    /// `{"error": text}`; equal to any other error when documents are compared.
    Error(String),
}

/// A raw MP state as result documents write it: its KVM name, or the number where KVM has none.
fn mp_state_text(v: u32) -> String {
    mp_state_name(v).map_or_else(|| v.to_string(), str::to_string)
}

fn event_name(v: u32) -> String {
    SystemEventType::from_kvm_value(v).map_or_else(|| v.to_string(), |t| t.name().to_string())
}

fn event_value(s: &str) -> Option<u32> {
    (1..=5)
        .find(|&v| event_name(v) == s)
        .or_else(|| s.parse().ok())
}

/// The exit kinds of `call` results, as the format names them.
const SYSTEM_EVENT: &str = "system_event";
const HYPERCALL: &str = "hypercall";

/// Every key of every result kind, in the order the format writes them (`exit` before
/// `type`, `data` and `nr`; `blocked` before `mp_state`; `x` last). A result is exactly one
/// of the key sets [`StepResult`] lists.
#[derive(Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawResult {
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    regs: Option<Vec<Number>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<Wide>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ok: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    errno: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    event: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Vec<Number>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nr: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flags: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    blocked: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mp_state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pc: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    x0: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    x: Option<Vec<Number>>,
}

impl RawResult {
    /// The keys present, in the format's order.
    fn keys(&self) -> Vec<&'static str> {
        [
            ("error", self.error.is_some()),
            ("regs", self.regs.is_some()),
            ("value", self.value.is_some()),
            ("ok", self.ok.is_some()),
            ("errno", self.errno.is_some()),
            ("exit", self.exit.is_some()),
            ("type", self.event.is_some()),
            ("data", self.data.is_some()),
            ("nr", self.nr.is_some()),
            ("flags", self.flags.is_some()),
            ("blocked", self.blocked.is_some()),
            ("mp_state", self.mp_state.is_some()),
            ("pc", self.pc.is_some()),
            ("x0", self.x0.is_some()),
            ("x", self.x.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, present)| present.then_some(k))
        .collect()
    }
}

fn numbers(v: &[u64]) -> Vec<Number> {
    v.iter().copied().map(Number).collect()
}

impl From<&StepResult> for RawResult {
    fn from(r: &StepResult) -> RawResult {
        let d = RawResult::default();
        match r {
            StepResult::Regs(ids) => RawResult {
                regs: Some(numbers(ids)),
                ..d
            },
            StepResult::Value(bytes) => RawResult {
                value: Some(Wide::from_le(bytes)),
                ..d
            },
            StepResult::Ok => RawResult {
                ok: Some(true),
                ..d
            },
            StepResult::Errno(e) => RawResult {
                errno: Some(e.name()),
                ..d
            },
            StepResult::Call(CallResult::Returned { x }) => RawResult {
                x: Some(numbers(x)),
                ..d
            },
            StepResult::Call(CallResult::SystemEvent { kind, data, x }) => RawResult {
                exit: Some(SYSTEM_EVENT.into()),
                event: Some(event_name(*kind)),
                data: Some(numbers(data)),
                x: Some(numbers(x)),
                ..d
            },
            StepResult::Call(CallResult::Hypercall { nr, flags }) => RawResult {
                exit: Some(HYPERCALL.into()),
                nr: Some(Number(*nr)),
                flags: Some(Number(*flags)),
                ..d
            },
            StepResult::Call(CallResult::Blocked { mp_state, x }) => RawResult {
                blocked: Some(true),
                mp_state: Some(mp_state_text(*mp_state)),
                x: Some(numbers(x)),
                ..d
            },
            StepResult::Entry { pc, x0 } => RawResult {
                pc: Some(Number(*pc)),
                x0: Some(Number(*x0)),
                ..d
            },
            StepResult::MpState(s) => RawResult {
                mp_state: Some(mp_state_text(*s)),
                ..d
            },
            StepResult::Error(t) => RawResult {
                error: Some(t.clone()),
                ..d
            },
        }
    }
}

impl TryFrom<RawResult> for StepResult {
    type Error = Invalid;

    fn try_from(raw: RawResult) -> Result<StepResult, Invalid> {
        let keys = raw.keys();
        let bad = |path: &str, message: String| Invalid(FieldError::bad_value(path, message));
        let x = |x: Option<Vec<Number>>| -> Result<[u64; 4], Invalid> {
            let list = x.unwrap_or_default();
            let n = list.len();
            <[Number; 4]>::try_from(list)
                .map(|a| a.map(|n| n.0))
                .map_err(|_| bad("x", format!("has {n} entries; expected 4 (x0..x3)")))
        };
        let mp_state = |s: Option<String>| -> Result<u32, Invalid> {
            let s = s.unwrap_or_default();
            mp_state_from_name(&s)
                .ok_or_else(|| bad("mp_state", format!("{s:?} is not a KVM_MP_STATE_* name")))
        };
        let n = |v: Option<Number>| v.map_or(0, |n| n.0);
        Ok(match keys.as_slice() {
            ["error"] => StepResult::Error(raw.error.unwrap_or_default()),
            ["regs"] => StepResult::Regs(raw.regs.iter().flatten().map(|n| n.0).collect()),
            ["value"] => StepResult::Value(raw.value.map(|v| v.bytes).unwrap_or_default()),
            ["ok"] if raw.ok == Some(true) => StepResult::Ok,
            ["errno"] => {
                let name = raw.errno.unwrap_or_default();
                let errno = Errno::from_name(&name).or_else(|| {
                    name.strip_prefix('E')
                        .and_then(|n| n.parse().ok())
                        .map(Errno)
                });
                StepResult::Errno(
                    errno.ok_or_else(|| bad("errno", format!("{name:?} is not an errno name")))?,
                )
            }
            ["x"] => StepResult::Call(CallResult::Returned { x: x(raw.x)? }),
            ["pc", "x0"] => StepResult::Entry {
                pc: n(raw.pc),
                x0: n(raw.x0),
            },
            ["mp_state"] => StepResult::MpState(mp_state(raw.mp_state)?),
            ["blocked", "mp_state", "x"] if raw.blocked == Some(true) => {
                StepResult::Call(CallResult::Blocked {
                    mp_state: mp_state(raw.mp_state)?,
                    x: x(raw.x)?,
                })
            }
            ["exit", "type", "data", "x"] if raw.exit.as_deref() == Some(SYSTEM_EVENT) => {
                let event = raw.event.unwrap_or_default();
                StepResult::Call(CallResult::SystemEvent {
                    kind: event_value(&event).ok_or_else(|| {
                        bad("type", format!("{event:?} is not a system event type"))
                    })?,
                    data: raw.data.iter().flatten().map(|n| n.0).collect(),
                    x: x(raw.x)?,
                })
            }
            ["exit", "nr", "flags"] if raw.exit.as_deref() == Some(HYPERCALL) => {
                StepResult::Call(CallResult::Hypercall {
                    nr: n(raw.nr),
                    flags: n(raw.flags),
                })
            }
            _ => {
                return Err(bad(
                    "",
                    format!("the keys {keys:?} with these values are not a step result"),
                ));
            }
        })
    }
}

impl Serialize for StepResult {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        RawResult::from(self).serialize(s)
    }
}

impl StepResult {
    /// The JSON form.
    pub fn to_json(&self) -> Value {
        // Cannot fail: every key is a string.
        serde_json::to_value(self).unwrap_or_default()
    }

    /// Read a result back from its JSON form (e.g. a recorded real result).
    pub fn from_json(v: &Value) -> Option<StepResult> {
        json::from_value(v).ok()
    }

    /// Equality as documents are compared: two errors are equal whatever their text; a value
    /// compares as a number (trailing zero bytes do not count).
    pub fn same_as(&self, other: &StepResult) -> bool {
        match (self, other) {
            (StepResult::Error(_), StepResult::Error(_)) => true,
            (StepResult::Value(a), StepResult::Value(b)) => hex_le_bytes(a) == hex_le_bytes(b),
            _ => self == other,
        }
    }
}

/// One scenario's result document, keys in the order of the format: `scenario`, `target`,
/// `results`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ResultDocument {
    /// The scenario's name.
    pub scenario: String,
    /// What answered (left out of comparisons; `null` when a document has none).
    #[serde(default)]
    pub target: Value,
    /// One result per step.
    pub results: Vec<StepResult>,
}

/// Where two result documents differ.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Mismatch {
    /// The index of the first differing result (or the shorter length).
    pub step: usize,
    /// This document's result there, as JSON text (`null` if it has none).
    pub ours: String,
    /// The other document's result there, as JSON text.
    pub theirs: String,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "step {}: got {} but expected {}",
            self.step, self.ours, self.theirs
        )
    }
}

impl ResultDocument {
    /// Read a document from its text (a line of `armfw sim`, a recorded file).
    pub fn parse(text: &str) -> Result<ResultDocument, FieldError> {
        json::from_str(text)
    }

    /// The JSON form, keys in the order of the format: `scenario`, `target`, `results`.
    pub fn to_json(&self) -> Value {
        // Cannot fail: every key is a string.
        serde_json::to_value(self).unwrap_or_default()
    }

    /// Read a document from its JSON form; `None` if it is not one.
    pub fn from_json(v: &Value) -> Option<ResultDocument> {
        json::from_value(v).ok()
    }

    /// `Ok` if the two documents are equal field for field, `target` aside; otherwise the
    /// first difference.
    pub fn conforms_to(&self, expected: &ResultDocument) -> Result<(), Mismatch> {
        match self.differences(expected).into_iter().next() {
            Some(m) => Err(m),
            None => Ok(()),
        }
    }

    /// Every place where this document differs from `other`, in step order: each result
    /// that is not [`StepResult::same_as`] its counterpart (a missing one is `null`), then a
    /// differing scenario name (reported at step 0). Empty when the documents conform.
    pub fn differences(&self, other: &ResultDocument) -> Vec<Mismatch> {
        let mut out = Vec::new();
        let n = self.results.len().max(other.results.len());
        for i in 0..n {
            let (a, b) = (self.results.get(i), other.results.get(i));
            if !matches!((a, b), (Some(a), Some(b)) if a.same_as(b)) {
                out.push(Mismatch {
                    step: i,
                    ours: result_text(a),
                    theirs: result_text(b),
                });
            }
        }
        if self.scenario != other.scenario {
            out.push(Mismatch {
                step: 0,
                ours: json!(self.scenario).to_string(),
                theirs: json!(other.scenario).to_string(),
            });
        }
        out
    }
}

/// A result as one line of JSON, `null` for none.
fn result_text(r: Option<&StepResult>) -> String {
    // Cannot fail: every key is a string.
    serde_json::to_string(&r).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_result_kind_round_trips_through_json() {
        let all = vec![
            StepResult::Regs(vec![0x6030_0000_0014_0000]),
            StepResult::Value(vec![1, 0, 1, 0, 0, 0, 0, 0]),
            StepResult::Ok,
            StepResult::Errno(Errno::EBUSY),
            StepResult::Call(CallResult::Returned {
                x: [u64::MAX, 0, 1, 2],
            }),
            StepResult::Call(CallResult::SystemEvent {
                kind: 2,
                data: vec![1],
                x: [0xffff_ffff_ffff_fffa, 0, 0, 0],
            }),
            StepResult::Call(CallResult::Hypercall {
                nr: 0x8400_0000,
                flags: 1,
            }),
            StepResult::Call(CallResult::Blocked {
                mp_state: 5,
                x: [0; 4],
            }),
            StepResult::Entry {
                pc: 0x4000_1000,
                x0: 0x55,
            },
            StepResult::MpState(10),
            StepResult::Error("boom".into()),
        ];
        for r in all {
            let back =
                StepResult::from_json(&r.to_json()).unwrap_or_else(|| panic!("{}", r.to_json()));
            assert!(back.same_as(&r), "{:?} != {:?}", back, r);
        }
    }

    #[test]
    fn result_json_has_the_formats_key_order_and_names() {
        let r = StepResult::Call(CallResult::SystemEvent {
            kind: 1,
            data: vec![0],
            x: [0; 4],
        });
        assert_eq!(
            r.to_json().to_string(),
            r#"{"exit":"system_event","type":"SHUTDOWN","data":["0x0"],"x":["0x0","0x0","0x0","0x0"]}"#
        );
        let b = StepResult::Call(CallResult::Blocked {
            mp_state: 0,
            x: [0; 4],
        });
        assert_eq!(
            b.to_json().to_string(),
            r#"{"blocked":true,"mp_state":"RUNNABLE","x":["0x0","0x0","0x0","0x0"]}"#
        );
    }

    #[test]
    fn documents_compare_errors_by_kind_not_text_and_ignore_target() {
        let a = ResultDocument {
            scenario: "s".into(),
            target: json!({"backend": "model"}),
            results: vec![StepResult::Ok, StepResult::Error("a".into())],
        };
        let b = ResultDocument {
            scenario: "s".into(),
            target: json!({"backend": "kvm"}),
            results: vec![StepResult::Ok, StepResult::Error("b".into())],
        };
        assert_eq!(a.conforms_to(&b), Ok(()));
        let c = ResultDocument {
            results: vec![StepResult::Ok],
            ..b.clone()
        };
        assert_eq!(a.conforms_to(&c).unwrap_err().step, 1);
    }

    #[test]
    fn every_result_kind_is_written_in_the_formats_key_order() {
        let h = StepResult::Call(CallResult::Hypercall {
            nr: 0x8400_0000,
            flags: 1,
        });
        assert_eq!(
            serde_json::to_string(&h).unwrap(),
            r#"{"exit":"hypercall","nr":"0x84000000","flags":"0x1"}"#
        );
        let e = StepResult::Entry {
            pc: 0x4000_1000,
            x0: 0x55,
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"pc":"0x40001000","x0":"0x55"}"#
        );
        assert_eq!(
            serde_json::to_string(&StepResult::Value(vec![1, 0, 0x10, 0])).unwrap(),
            r#"{"value":"0x100001"}"#
        );
    }

    #[test]
    fn documents_that_are_not_results_are_refused_with_the_path() {
        let doc = |results: &str| {
            ResultDocument::parse(&format!(
                r#"{{"scenario":"s","target":null,"results":[{results}]}}"#
            ))
        };
        assert!(doc(r#"{"ok":true},{"x":["0x0","0x0","0x0","0x0"]}"#).is_ok());
        let e = doc(r#"{"ok":true},{"ok":true,"x":[]}"#).unwrap_err();
        assert_eq!(e.path, "results[1]");
        let e = doc(r#"{"x":["0x0"]}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "results[0].x: has 1 entries; expected 4 (x0..x3)"
        );
        let e = doc(r#"{"errno":"EWHAT"}"#).unwrap_err();
        assert_eq!(e.path, "results[0].errno");
        let e = doc(r#"{"okay":true}"#).unwrap_err();
        assert_eq!(e.to_string(), "results[0].okay: unknown key");
        let e = ResultDocument::parse(r#"{"scenario":"s","results":[],"extra":1}"#).unwrap_err();
        assert_eq!(e.to_string(), "extra: unknown key");
        assert_eq!(
            ResultDocument::parse(r#"{"scenario":"s","results":[]}"#)
                .unwrap()
                .target,
            Value::Null
        );
    }
}
