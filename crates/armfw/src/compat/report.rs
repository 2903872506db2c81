//! The JSON and text forms of a [`Report`].

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Accepts, Finding, Outcome, PlanAction, Report, StrictOutcome, Subject, Verdict};
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
    /// The JSON form: one shape for every register and capability ([`DestinationJson`]).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.document()).unwrap_or(Value::Null)
    }

    /// The serialisable form.
    pub fn document(&self) -> DestinationJson {
        let none = DestinationJson {
            present: true,
            values: None,
            host_level: None,
            mask: None,
            default: None,
        };
        match *self {
            Accepts::Missing => DestinationJson {
                present: false,
                ..none
            },
            Accepts::PsciVersions(set) => DestinationJson {
                values: Some(set.iter().map(|v| hex(v.0.into())).collect()),
                ..none
            },
            Accepts::Psci01 => DestinationJson {
                values: Some(vec![hex(PsciVersion::V0_1.0.into())]),
                ..none
            },
            Accepts::Level { kind, host } => {
                let host_level = kind.host_value(host);
                let values = kind
                    .values()
                    .iter()
                    .filter(|&&v| {
                        host_level.is_some_and(|h| kind.decode(v).is_some_and(|l| l <= h))
                    })
                    .map(|&v| hex(v))
                    .collect();
                DestinationJson {
                    values: Some(values),
                    host_level: Some(hex(host)),
                    ..none
                }
            }
            Accepts::Bits { writable, default } => DestinationJson {
                mask: Some(hex(writable)),
                default: Some(hex(default)),
                ..none
            },
            Accepts::Present => none,
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

    /// The JSON form ([`FindingJson`]).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.document()).unwrap_or(Value::Null)
    }

    /// The serialisable form.
    pub fn document(&self) -> FindingJson {
        let id = match self.subject {
            Subject::Register(id) => Some(hex(id)),
            _ => None,
        };
        FindingJson {
            subject: self.subject.to_string(),
            id,
            saved: match (self.subject, self.saved) {
                (_, None) => None,
                (Subject::Register(_), Some(s)) => Some(Saved::Value(hex(s))),
                (_, Some(_)) => Some(Saved::InUse(true)),
            },
            destination: self.accepts.document(),
            rule: self.rule.name().to_string(),
            why: self.rule.text().to_string(),
            outcome: self.outcome.name().to_string(),
            value: match self.outcome {
                Outcome::Pin(v) => Some(hex(v)),
                _ => None,
            },
            remedy: self.remedy.map(|r| r.to_string()),
        }
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
    /// The JSON form ([`PlanJson`]).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.document()).unwrap_or(Value::Null)
    }

    /// The serialisable form.
    pub fn document(&self) -> PlanJson {
        match *self {
            PlanAction::EnableSystemSuspend => PlanJson::EnableSystemSuspend,
            PlanAction::InstallSmcccFilter { ranges } => PlanJson::InstallSmcccFilter { ranges },
            PlanAction::Write { id, value } => PlanJson::Write {
                register: Subject::Register(id).to_string(),
                id: hex(id),
                value: hex(value),
            },
            PlanAction::Skip { id, rule } => PlanJson::Skip {
                register: Subject::Register(id).to_string(),
                id: hex(id),
                rule: rule.name().to_string(),
            },
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
    /// The JSON form ([`StrictJson`]); `changes_guest` says whether a restore KVM accepts
    /// still changes the guest's firmware (see [`Report::strict_result`]).
    pub fn to_json(&self, changes_guest: bool) -> Value {
        serde_json::to_value(self.document(changes_guest)).unwrap_or(Value::Null)
    }

    /// The serialisable form.
    pub fn document(&self, changes_guest: bool) -> StrictJson {
        let mut v = StrictJson {
            ok: true,
            result: if changes_guest {
                StrictResult::GuestChanges
            } else {
                StrictResult::Unchanged
            },
            step: None,
            vcpu: None,
            register: None,
            id: None,
            range: None,
            errno: None,
        };
        if let StrictOutcome::Fails { step, errno } = *self {
            v.ok = false;
            v.result = StrictResult::Refused;
            match step {
                Step::SetSmcccFilter { range } => v.range = Some(range),
                Step::SetOneReg { id, .. } => {
                    v.register = Some(Subject::Register(id).to_string());
                    v.id = Some(hex(id));
                }
                _ => {}
            }
            v.step = Some(step.name().to_string());
            v.vcpu = step.vcpu();
            v.errno = Some(errno.name().to_string());
        }
        v
    }
}

/// The format name and version of `armfw check --json` ([`CheckJson`]).
pub const CHECK_FORMAT: &str = "armfw-check/1";

/// The strict restore's predicted result, in three words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StrictResult {
    /// KVM accepts every write and the guest's firmware stays what it was.
    Unchanged,
    /// KVM accepts every write, but the guest's firmware changes (a refused or pinned
    /// finding: the destination's value stands where the saved one meant something else).
    GuestChanges,
    /// KVM refuses a step (`step`, `errno`): the restore fails.
    Refused,
}

impl StrictResult {
    /// The text form.
    pub const fn text(self) -> &'static str {
        match self {
            StrictResult::Unchanged => {
                "succeeds: KVM accepts every write and the guest's firmware stays the same"
            }
            StrictResult::GuestChanges => {
                "KVM accepts every write, but the guest's firmware changes (see the findings above)"
            }
            StrictResult::Refused => "KVM refuses it",
        }
    }
}

/// `armfw check --json`: one document (docs/schemas/armfw-check-1.schema.json).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckJson {
    /// Always [`CHECK_FORMAT`].
    pub format: String,
    /// Where the snapshot was saved.
    pub source: HostJson,
    /// The destination host.
    pub destination: HostJson,
    /// `compatible`, `compatible_with_plan` or `incompatible`.
    pub verdict: String,
    /// One per firmware register and per capability the VM uses.
    pub findings: Vec<FindingJson>,
    /// armfw's restore plan, in order; `null` for an incompatible verdict (there is none).
    pub plan: Option<Vec<PlanJson>>,
    /// The strict restore's predicted outcome.
    pub strict: StrictJson,
    /// For a whole-VM state (snapshot format 2.0): the restore under each VMM policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whole_vm: Option<super::whole::WholeVmJson>,
}

/// A host: profile name and kernel release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostJson {
    /// The profile's name.
    pub profile: String,
    /// The kernel release.
    pub kernel: String,
}

/// A saved value: a register's value (hex), or `true` for a capability in use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Saved {
    /// A register's saved value, `0x…`.
    Value(String),
    /// A capability the VM uses (always `true`).
    InUse(bool),
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingJson {
    /// The register's name, or the capability.
    pub subject: String,
    /// The register's ONE_REG id; `null` for a capability.
    pub id: Option<String>,
    /// The saved value; `null` when the source did not save the register.
    pub saved: Option<Saved>,
    /// What the destination accepts.
    pub destination: DestinationJson,
    /// The rule that decides.
    pub rule: String,
    /// Why the rule is safe.
    pub why: String,
    /// `restore`, `keep`, `pin`, `skip` or `refuse`.
    pub outcome: String,
    /// The value a `pin` writes; `null` otherwise.
    pub value: Option<String>,
    /// For a refusal, what would make the move possible; `null` otherwise.
    pub remedy: Option<String>,
}

/// What the destination accepts: the same keys for every subject, `null` where a key does not
/// apply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationJson {
    /// Whether the destination has the register (or capability).
    pub present: bool,
    /// The values its SET accepts, where they are a list (PSCI versions, WORKAROUND levels).
    pub values: Option<Vec<String>>,
    /// For a WORKAROUND register: the destination host's level.
    pub host_level: Option<String>,
    /// For a bitmap: the writable bits.
    pub mask: Option<String>,
    /// For a bitmap: the default bits.
    pub default: Option<String>,
}

/// One action of armfw's plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum PlanJson {
    /// Enable KVM_CAP_ARM_SYSTEM_SUSPEND before creating the vCPUs.
    EnableSystemSuspend,
    /// Install the filter ranges before the first KVM_RUN.
    InstallSmcccFilter {
        /// How many ranges.
        ranges: usize,
    },
    /// Write a register on every vCPU before the first KVM_RUN.
    Write {
        /// Its name.
        register: String,
        /// Its ONE_REG id.
        id: String,
        /// The value.
        value: String,
    },
    /// Leave a saved register out.
    Skip {
        /// Its name.
        register: String,
        /// Its ONE_REG id.
        id: String,
        /// The rule that allows it.
        rule: String,
    },
}

/// The strict restore's prediction: the same keys for every outcome, `null` where a key does
/// not apply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrictJson {
    /// Whether KVM accepts every step.
    pub ok: bool,
    /// `unchanged`, `guest_changes` or `refused`.
    pub result: StrictResult,
    /// The step KVM refuses.
    pub step: Option<String>,
    /// Its vCPU, where it has one.
    pub vcpu: Option<usize>,
    /// The refused register's name (a SET_ONE_REG step).
    pub register: Option<String>,
    /// The refused register's id.
    pub id: Option<String>,
    /// The refused filter range.
    pub range: Option<usize>,
    /// The errno KVM answers.
    pub errno: Option<String>,
}

impl Report {
    /// The strict restore's predicted result: refused, or accepted with or without a change
    /// to the guest's firmware (accepted under any verdict but compatible means a finding's
    /// saved meaning does not reach the destination).
    pub fn strict_result(&self) -> StrictResult {
        match self.strict {
            StrictOutcome::Fails { .. } => StrictResult::Refused,
            StrictOutcome::Ok if self.verdict == Verdict::Compatible => StrictResult::Unchanged,
            StrictOutcome::Ok => StrictResult::GuestChanges,
        }
    }

    /// The `armfw check --json` document, with where the snapshot came from and where it goes.
    pub fn document(&self, snapshot: &Snapshot, dest: &Profile) -> CheckJson {
        CheckJson {
            format: CHECK_FORMAT.to_string(),
            source: HostJson {
                profile: snapshot.source.profile.clone(),
                kernel: snapshot.source.kernel.clone(),
            },
            destination: HostJson {
                profile: dest.name().to_string(),
                kernel: dest.kernel().to_string(),
            },
            verdict: self.verdict.name().to_string(),
            findings: self.findings().map(Finding::document).collect(),
            plan: (self.verdict != Verdict::Incompatible)
                .then(|| self.plan().map(PlanAction::document).collect()),
            strict: self
                .strict
                .document(self.strict_result() == StrictResult::GuestChanges),
            whole_vm: snapshot.machine().map(|_| {
                super::whole::WholeVmJson::new(
                    snapshot,
                    &super::whole::vmm_outcomes(snapshot, dest),
                    &super::whole::plan(snapshot, dest),
                )
            }),
        }
    }

    /// The JSON form of [`Report::document`].
    pub fn to_json(&self, snapshot: &Snapshot, dest: &Profile) -> Value {
        serde_json::to_value(self.document(snapshot, dest)).unwrap_or(Value::Null)
    }
}
