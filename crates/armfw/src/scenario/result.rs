//! Result documents: one per scenario, one result per step.

use serde_json::{Map, Value, json};

use crate::abi::Errno;
use crate::firmware::{KVM_MP_STATE_NAMES, SystemEventType};
use crate::json::{hex, hex_le_bytes, parse_hex};

/// What a `call` step gave.
#[derive(Clone, Debug, PartialEq, Eq)]
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
#[derive(Clone, Debug, PartialEq, Eq)]
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

fn mp_state_name(v: u32) -> String {
    KVM_MP_STATE_NAMES
        .iter()
        .find(|(_, n)| *n == v)
        .map_or_else(|| v.to_string(), |(s, _)| (*s).to_string())
}

fn mp_state_value(s: &str) -> Option<u32> {
    KVM_MP_STATE_NAMES
        .iter()
        .find(|(n, _)| *n == s)
        .map(|(_, v)| *v)
        .or_else(|| s.parse().ok())
}

fn event_name(v: u32) -> String {
    SystemEventType::from_kvm_value(v).map_or_else(|| v.to_string(), |t| t.name().to_string())
}

fn event_value(s: &str) -> Option<u32> {
    (1..=5)
        .find(|&v| event_name(v) == s)
        .or_else(|| s.parse().ok())
}

fn xs(x: &[u64; 4]) -> Value {
    json!(x.iter().map(|&v| hex(v)).collect::<Vec<_>>())
}

impl StepResult {
    /// The JSON form.
    pub fn to_json(&self) -> Value {
        match self {
            StepResult::Regs(ids) => {
                json!({"regs": ids.iter().map(|&v| hex(v)).collect::<Vec<_>>()})
            }
            StepResult::Value(bytes) => json!({"value": hex_le_bytes(bytes)}),
            StepResult::Ok => json!({"ok": true}),
            StepResult::Errno(e) => json!({"errno": e.name()}),
            StepResult::Call(CallResult::Returned { x }) => json!({"x": xs(x)}),
            StepResult::Call(CallResult::SystemEvent { kind, data, x }) => {
                let mut m = Map::new();
                m.insert("exit".into(), json!("system_event"));
                m.insert("type".into(), json!(event_name(*kind)));
                m.insert(
                    "data".into(),
                    json!(data.iter().map(|&v| hex(v)).collect::<Vec<_>>()),
                );
                m.insert("x".into(), xs(x));
                Value::Object(m)
            }
            StepResult::Call(CallResult::Hypercall { nr, flags }) => {
                let mut m = Map::new();
                m.insert("exit".into(), json!("hypercall"));
                m.insert("nr".into(), json!(hex(*nr)));
                m.insert("flags".into(), json!(hex(*flags)));
                Value::Object(m)
            }
            StepResult::Call(CallResult::Blocked { mp_state, x }) => {
                let mut m = Map::new();
                m.insert("blocked".into(), json!(true));
                m.insert("mp_state".into(), json!(mp_state_name(*mp_state)));
                m.insert("x".into(), xs(x));
                Value::Object(m)
            }
            StepResult::Entry { pc, x0 } => json!({"pc": hex(*pc), "x0": hex(*x0)}),
            StepResult::MpState(s) => json!({"mp_state": mp_state_name(*s)}),
            StepResult::Error(t) => json!({"error": t}),
        }
    }

    /// Read a result back from its JSON form (e.g. a recorded real result).
    pub fn from_json(v: &Value) -> Option<StepResult> {
        let o = v.as_object()?;
        let h = |k: &str| o.get(k).and_then(Value::as_str).and_then(parse_hex);
        let x = || -> Option<[u64; 4]> {
            let a = o.get("x")?.as_array()?;
            if a.len() != 4 {
                return None;
            }
            let mut out = [0u64; 4];
            for (i, e) in a.iter().enumerate() {
                out[i] = parse_hex(e.as_str()?)?;
            }
            Some(out)
        };
        let keys: Vec<&str> = o.keys().map(String::as_str).collect();
        let has = |ks: &[&str]| keys.len() == ks.len() && ks.iter().all(|k| o.contains_key(*k));
        if has(&["error"]) {
            return Some(StepResult::Error(o["error"].as_str()?.to_string()));
        }
        if has(&["regs"]) {
            let ids = o["regs"]
                .as_array()?
                .iter()
                .map(|e| e.as_str().and_then(parse_hex))
                .collect::<Option<Vec<_>>>()?;
            return Some(StepResult::Regs(ids));
        }
        if has(&["value"]) {
            let s = o["value"].as_str()?.strip_prefix("0x")?;
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            let padded = if s.len() % 2 == 1 {
                format!("0{s}")
            } else {
                s.to_string()
            };
            let mut bytes: Vec<u8> = (0..padded.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&padded[i..i + 2], 16).ok())
                .collect::<Option<Vec<_>>>()?;
            bytes.reverse();
            return Some(StepResult::Value(bytes));
        }
        if has(&["ok"]) {
            return (o["ok"] == json!(true)).then_some(StepResult::Ok);
        }
        if has(&["errno"]) {
            let name = o["errno"].as_str()?;
            return Errno::from_name(name)
                .or_else(|| {
                    name.strip_prefix('E')
                        .and_then(|n| n.parse().ok())
                        .map(Errno)
                })
                .map(StepResult::Errno);
        }
        if has(&["x"]) {
            return Some(StepResult::Call(CallResult::Returned { x: x()? }));
        }
        if has(&["pc", "x0"]) {
            return Some(StepResult::Entry {
                pc: h("pc")?,
                x0: h("x0")?,
            });
        }
        if has(&["mp_state"]) {
            return Some(StepResult::MpState(mp_state_value(
                o["mp_state"].as_str()?,
            )?));
        }
        if has(&["blocked", "mp_state", "x"]) {
            return Some(StepResult::Call(CallResult::Blocked {
                mp_state: mp_state_value(o["mp_state"].as_str()?)?,
                x: x()?,
            }));
        }
        if has(&["exit", "type", "data", "x"]) && o["exit"] == json!("system_event") {
            let data = o["data"]
                .as_array()?
                .iter()
                .map(|e| e.as_str().and_then(parse_hex))
                .collect::<Option<Vec<_>>>()?;
            return Some(StepResult::Call(CallResult::SystemEvent {
                kind: event_value(o["type"].as_str()?)?,
                data,
                x: x()?,
            }));
        }
        if has(&["exit", "nr", "flags"]) && o["exit"] == json!("hypercall") {
            return Some(StepResult::Call(CallResult::Hypercall {
                nr: h("nr")?,
                flags: h("flags")?,
            }));
        }
        None
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

/// One scenario's result document.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultDocument {
    /// The scenario's name.
    pub scenario: String,
    /// What answered (left out of comparisons).
    pub target: Value,
    /// One result per step.
    pub results: Vec<StepResult>,
}

/// Where two result documents differ.
#[derive(Clone, Debug, PartialEq)]
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
    /// The JSON form, keys in the order of the format: `scenario`, `target`, `results`.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("scenario".into(), json!(self.scenario));
        m.insert("target".into(), self.target.clone());
        m.insert(
            "results".into(),
            Value::Array(self.results.iter().map(StepResult::to_json).collect()),
        );
        Value::Object(m)
    }

    /// Read a document from its JSON form; `None` if it is not one.
    pub fn from_json(v: &Value) -> Option<ResultDocument> {
        let o = v.as_object()?;
        let results = o
            .get("results")?
            .as_array()?
            .iter()
            .map(StepResult::from_json)
            .collect::<Option<Vec<_>>>()?;
        Some(ResultDocument {
            scenario: o.get("scenario")?.as_str()?.to_string(),
            target: o.get("target").cloned().unwrap_or(Value::Null),
            results,
        })
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
                    ours: a.map_or(Value::Null, StepResult::to_json).to_string(),
                    theirs: b.map_or(Value::Null, StepResult::to_json).to_string(),
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
}
