//! The JSON and text forms of a [`Report`].

use std::fmt;

use serde_json::{Value, json};

use super::{Accepts, Finding, Outcome, PlanAction, Report, StrictOutcome, Subject};
use crate::abi::{FwReg, PsciVersion};
use crate::json::hex;
use crate::profile::Profile;
use crate::snapshot::{Snapshot, Step};

impl fmt::Display for Accepts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Accepts::Missing => f.write_str("(absent)"),
            Accepts::PsciVersions(set) => {
                for (i, v) in set.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                Ok(())
            }
            Accepts::Psci01 => f.write_str("0.1 (without PSCI_0_2)"),
            Accepts::Level { kind, host } => {
                let host_level = kind.host_value(host);
                f.write_str("levels ")?;
                let accepted = kind.values().iter().filter(|&&v| {
                    host_level.is_some_and(|h| kind.decode(v).is_some_and(|l| l <= h))
                });
                for (i, v) in accepted.enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v:#x}")?;
                }
                write!(f, " (host level {host:#x})")
            }
            Accepts::Bits { writable, default } => {
                write!(f, "subsets of {writable:#x} (default {default:#x})")
            }
            Accepts::Present => f.write_str("yes"),
        }
    }
}

impl Accepts {
    /// The JSON form.
    pub fn to_json(&self) -> Value {
        match *self {
            Accepts::Missing => json!({"present": false}),
            Accepts::PsciVersions(set) => json!({
                "present": true,
                "values": set.iter().map(|v| hex(v.0.into())).collect::<Vec<_>>(),
            }),
            Accepts::Psci01 => {
                json!({"present": true, "values": [hex(PsciVersion::V0_1.0.into())]})
            }
            Accepts::Level { host, .. } => json!({"present": true, "host_level": hex(host)}),
            Accepts::Bits { writable, default } => {
                json!({"present": true, "mask": hex(writable), "default": hex(default)})
            }
            Accepts::Present => json!({"present": true}),
        }
    }
}

impl Finding {
    /// The saved value in words: PSCI versions by name, other values in hex; capabilities
    /// "in use".
    pub fn saved_text(&self) -> String {
        match (self.subject, self.saved) {
            (_, None) => "(not saved)".to_string(),
            (Subject::Register(id), Some(v)) if id == FwReg::PsciVersion.id() => {
                match u32::try_from(v) {
                    Ok(p) => format!("{} ({})", PsciVersion(p), hex(v)),
                    Err(_) => hex(v),
                }
            }
            (Subject::Register(_), Some(v)) => hex(v),
            (_, Some(_)) => "in use".to_string(),
        }
    }

    /// The JSON form.
    pub fn to_json(&self) -> Value {
        let mut v = json!({"subject": self.subject.to_string()});
        if let Subject::Register(id) = self.subject {
            v["id"] = json!(hex(id));
        }
        v["saved"] = match (self.subject, self.saved) {
            (_, None) => Value::Null,
            (Subject::Register(_), Some(s)) => json!(hex(s)),
            (_, Some(_)) => json!(true),
        };
        v["destination"] = self.accepts.to_json();
        v["rule"] = json!(self.rule.name());
        v["why"] = json!(self.rule.text());
        v["outcome"] = json!(self.outcome.name());
        if let Outcome::Pin(value) = self.outcome {
            v["value"] = json!(hex(value));
        }
        v["remedy"] = self.remedy.map_or(Value::Null, |r| json!(r.to_string()));
        v
    }
}

impl fmt::Display for PlanAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PlanAction::EnableSystemSuspend => {
                f.write_str("enable KVM_CAP_ARM_SYSTEM_SUSPEND before creating the vCPUs")
            }
            PlanAction::InstallSmcccFilter { ranges } => write!(
                f,
                "install the {ranges} SMCCC filter range(s) before the first KVM_RUN"
            ),
            PlanAction::Write { id, value } => {
                write!(
                    f,
                    "write {} = {value:#x} on every vCPU before the first KVM_RUN",
                    Subject::Register(id)
                )
            }
            PlanAction::Skip { id, rule } => {
                write!(f, "skip {} ({})", Subject::Register(id), rule.name())
            }
        }
    }
}

impl PlanAction {
    /// The JSON form.
    pub fn to_json(&self) -> Value {
        match *self {
            PlanAction::EnableSystemSuspend => json!({"action": "enable_system_suspend"}),
            PlanAction::InstallSmcccFilter { ranges } => {
                json!({"action": "install_smccc_filter", "ranges": ranges})
            }
            PlanAction::Write { id, value } => json!({
                "action": "write",
                "register": Subject::Register(id).to_string(),
                "id": hex(id),
                "value": hex(value),
            }),
            PlanAction::Skip { id, rule } => json!({
                "action": "skip",
                "register": Subject::Register(id).to_string(),
                "id": hex(id),
                "rule": rule.name(),
            }),
        }
    }
}

impl fmt::Display for StrictOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StrictOutcome::Ok => f.write_str("succeeds"),
            StrictOutcome::Fails { step, errno } => write!(f, "fails at {step}: {errno}"),
        }
    }
}

impl StrictOutcome {
    /// The JSON form: `{"ok": true}` or the failing step and errno.
    pub fn to_json(&self) -> Value {
        match *self {
            StrictOutcome::Ok => json!({"ok": true}),
            StrictOutcome::Fails { step, errno } => {
                let mut v = json!({"ok": false});
                match step {
                    Step::SetSmcccFilter { range } => v["range"] = json!(range),
                    Step::SetOneReg { id, .. } => {
                        v["register"] = json!(Subject::Register(id).to_string());
                        v["id"] = json!(hex(id));
                    }
                    _ => {}
                }
                v["step"] = json!(step.name());
                if let Some(vcpu) = step.vcpu() {
                    v["vcpu"] = json!(vcpu);
                }
                v["errno"] = json!(errno.name());
                v
            }
        }
    }
}

impl Report {
    /// The JSON form, with where the snapshot came from and where it goes.
    pub fn to_json(&self, snapshot: &Snapshot, dest: &Profile) -> Value {
        json!({
            "source": {"profile": snapshot.source.profile, "kernel": snapshot.source.kernel},
            "destination": {"profile": dest.name, "kernel": dest.kernel},
            "verdict": self.verdict.name(),
            "findings": self.findings().map(Finding::to_json).collect::<Vec<_>>(),
            "plan": self.plan().map(PlanAction::to_json).collect::<Vec<_>>(),
            "strict": self.strict.to_json(),
        })
    }
}
