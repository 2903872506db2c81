//! [`check`]: a snapshot against a destination profile, without allocating.

use super::strict::{predict_strict, strict_set};
use super::{
    Accepts, Finding, Need, Outcome, PlanAction, Remedy, Rule, StrictOutcome, Subject, Verdict,
    VersionSet,
};
use crate::abi::{FwReg, PsciVersion};
use crate::profile::Profile;
use crate::register::{self, SetRule, WorkaroundLevel};
use crate::snapshot::{MAX_REGISTERS, Snapshot};

/// The most findings a report holds: every saved register, every register only the
/// destination has, two capabilities.
pub const MAX_FINDINGS: usize = MAX_REGISTERS + FwReg::ALL.len() + 2;

/// A list of at most `N` items, without allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct List<T: Copy, const N: usize> {
    items: [Option<T>; N],
    len: usize,
}

impl<T: Copy, const N: usize> List<T, N> {
    const fn new() -> Self {
        List {
            items: [None; N],
            len: 0,
        }
    }

    fn push(&mut self, item: T) {
        // The capacities cover every subject a valid or invalid snapshot can produce:
        // MAX_FINDINGS counts them; extra items would only come from a snapshot with more
        // registers than MAX_REGISTERS, which check() does not read past.
        if let Some(slot) = self.items.get_mut(self.len) {
            *slot = Some(item);
            self.len += 1;
        }
    }

    fn iter(&self) -> impl Iterator<Item = &T> {
        self.items.iter().take(self.len).flatten()
    }
}

/// The answer of [`check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Report {
    /// The verdict.
    pub verdict: Verdict,
    /// The predicted outcome of the strict policy.
    pub strict: StrictOutcome,
    findings: List<Finding, MAX_FINDINGS>,
    plan: List<PlanAction, MAX_FINDINGS>,
}

impl Report {
    /// The findings: the capabilities the VM uses (set up first at restore), then the
    /// registers in KVM's order, ids armfw does not know last.
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter()
    }

    /// armfw's plan, in order (meaningful unless the verdict is incompatible).
    pub fn plan(&self) -> impl Iterator<Item = &PlanAction> {
        self.plan.iter()
    }

    /// The finding for `reg`, if any.
    pub fn finding(&self, reg: FwReg) -> Option<&Finding> {
        self.findings()
            .find(|f| f.subject == Subject::Register(reg.id()))
    }
}

/// Check whether `snapshot` can be restored on the host `dest` describes. See the
/// [module documentation](super). `snapshot` should have passed [`Snapshot::validate`] (every
/// loaded snapshot has); an invalid one gives an answer, never a panic.
pub fn check(snapshot: &Snapshot, dest: &Profile) -> Report {
    let mut findings = List::new();
    let mut plan = List::new();
    let saved_regs = snapshot
        .vm
        .registers
        .get(..MAX_REGISTERS)
        .unwrap_or(&snapshot.vm.registers);
    if snapshot.vm.system_suspend {
        let ok = dest.capabilities().system_suspend;
        findings.push(capability(
            Subject::SystemSuspend,
            ok,
            Rule::SystemSuspendOffered,
            Rule::SystemSuspendMissing,
            Need::SystemSuspend,
        ));
        if ok {
            plan.push(PlanAction::EnableSystemSuspend);
        }
    }
    if !snapshot.vm.smccc_filter.is_empty() {
        let ok = dest.capabilities().smccc_filter;
        findings.push(capability(
            Subject::SmcccFilter,
            ok,
            Rule::SmcccFilterOffered,
            Rule::SmcccFilterMissing,
            Need::SmcccFilter,
        ));
        if ok {
            plan.push(PlanAction::InstallSmcccFilter {
                ranges: snapshot.vm.smccc_filter.len(),
            });
        }
    }
    // A whole VM whose saved ID_AA64PFR1_EL1 hides the destination's SSBS: the plan writes
    // the VM-wide registers first, so KVM judges WORKAROUND_2 against that VM.
    let ssbs_hidden = whole_vm_hides_ssbs(snapshot, dest);
    for reg in FwReg::ALL {
        let saved = saved_regs
            .iter()
            .find(|r| r.id == reg.id())
            .map(|r| r.value);
        let Some(f) = assess(reg, saved, snapshot.vm.psci_0_2, dest, ssbs_hidden) else {
            continue;
        };
        match f.outcome {
            Outcome::Restore => {
                if let Some(value) = saved {
                    plan.push(PlanAction::Write {
                        id: reg.id(),
                        value,
                    });
                }
            }
            Outcome::Pin(value) => plan.push(PlanAction::Write {
                id: reg.id(),
                value,
            }),
            Outcome::Skip => plan.push(PlanAction::Skip {
                id: reg.id(),
                rule: f.rule,
            }),
            Outcome::Keep | Outcome::Refuse => {}
        }
        findings.push(f);
    }
    for r in saved_regs.iter().filter(|r| r.reg().is_none()) {
        findings.push(Finding {
            subject: Subject::Register(r.id),
            saved: Some(r.value),
            accepts: Accepts::Missing,
            rule: Rule::UnknownRegister,
            outcome: Outcome::Refuse,
            remedy: Some(Remedy::HostWith(Need::KnownRegister)),
        });
    }
    let verdict = if findings.iter().any(Finding::is_refused) {
        Verdict::Incompatible
    } else if findings
        .iter()
        .any(|f| matches!(f.outcome, Outcome::Skip | Outcome::Pin(_)))
    {
        Verdict::CompatibleWithPlan
    } else {
        Verdict::Compatible
    };
    Report {
        verdict,
        strict: predict_strict(snapshot, saved_regs, dest),
        findings,
        plan,
    }
}

fn capability(subject: Subject, ok: bool, yes: Rule, no: Rule, need: Need) -> Finding {
    Finding {
        subject,
        saved: Some(1),
        accepts: if ok {
            Accepts::Present
        } else {
            Accepts::Missing
        },
        rule: if ok { yes } else { no },
        outcome: if ok {
            Outcome::Restore
        } else {
            Outcome::Refuse
        },
        remedy: (!ok).then_some(Remedy::HostWith(need)),
    }
}

/// Whether the whole VM `snapshot` shows no SSBS where `dest` has it
/// ([`register::ssbs_hidden`]; false for a firmware-only state).
fn whole_vm_hides_ssbs(snapshot: &Snapshot, dest: &Profile) -> bool {
    const PFR1: u64 = crate::abi::vcpu_reg::sysreg_id(3, 0, 0, 4, 1);
    let Some(m) = snapshot.machine() else {
        return false;
    };
    let saved = m.value(0, PFR1).map(|r| r.low_u64());
    let host = dest
        .vcpu()
        .and_then(|v| v.feature_set(m.features))
        .and_then(|s| s.reset(PFR1))
        .map(crate::json::Wide::low_u64);
    matches!((host, saved), (Some(h), Some(v)) if register::ssbs_hidden(h, v))
}

fn assess(
    reg: FwReg,
    saved: Option<u64>,
    psci_0_2: bool,
    dest: &Profile,
    ssbs_hidden: bool,
) -> Option<Finding> {
    let on_dest = dest.register(reg);
    if saved.is_none() && on_dest.is_none() {
        return None;
    }
    let finding = |accepts, rule, outcome, remedy| {
        Some(Finding {
            subject: Subject::Register(reg.id()),
            saved,
            accepts,
            rule,
            outcome,
            remedy,
        })
    };
    let missing = |rule, remedy| finding(Accepts::Missing, rule, Outcome::Refuse, remedy);
    match reg {
        FwReg::PsciVersion => {
            let offered = VersionSet::from_versions(dest.psci_versions());
            if !psci_0_2 {
                let outcome = if saved == Some(u64::from(PsciVersion::V0_1.0)) {
                    Outcome::Restore
                } else {
                    Outcome::Refuse
                };
                return finding(Accepts::Psci01, Rule::Psci01, outcome, None);
            }
            if !dest.capabilities().psci_0_2 {
                return missing(
                    Rule::PsciFeatureMissing,
                    Some(Remedy::HostWith(Need::PsciFeature)),
                );
            }
            let v = saved.and_then(|s| u32::try_from(s).ok()).map(PsciVersion);
            let accepts = Accepts::PsciVersions(offered);
            match v {
                Some(v) if offered.contains(v) => {
                    finding(accepts, Rule::PsciVersionOffered, Outcome::Restore, None)
                }
                _ => finding(
                    accepts,
                    Rule::PsciVersionNotOffered,
                    Outcome::Refuse,
                    offered
                        .newest()
                        .map(|at_most| Remedy::PinPsciVersion { at_most }),
                ),
            }
        }
        FwReg::SmcccArchWorkaround1 | FwReg::SmcccArchWorkaround2 | FwReg::SmcccArchWorkaround3 => {
            let desc = register::firmware(reg);
            let SetRule::HostLevel(kind) = desc.rule else {
                return None;
            };
            let accepts = |host| Accepts::Level { kind, host };
            let accepted = |s| strict_set(dest, psci_0_2, reg.id(), s, ssbs_hidden).is_ok();
            let level = register::vm_level(reg, dest, ssbs_hidden);
            match (saved, on_dest.and(level)) {
                (Some(s), Some(d)) if s == d => finding(
                    accepts(d),
                    Rule::WorkaroundWithinHost,
                    Outcome::Restore,
                    None,
                ),
                (Some(s), Some(d)) if accepted(s) => finding(
                    accepts(d),
                    Rule::WorkaroundBelowHost,
                    Outcome::Refuse,
                    Some(Remedy::HostLevel { reg, level: s }),
                ),
                (Some(s), Some(d)) => finding(
                    accepts(d),
                    Rule::WorkaroundAboveHost,
                    Outcome::Refuse,
                    Some(Remedy::HostLevel { reg, level: s }),
                ),
                (Some(s), None) if kind.decode(s) == Some(WorkaroundLevel::NotAvail) => finding(
                    Accepts::Missing,
                    Rule::WorkaroundPromisesNothing,
                    Outcome::Skip,
                    None,
                ),
                (Some(_), None) => missing(
                    Rule::WorkaroundNoRegister,
                    Some(Remedy::HostWith(Need::Register(reg))),
                ),
                (None, d) => finding(
                    accepts(d.unwrap_or(0)),
                    Rule::WorkaroundNotSaved,
                    Outcome::Keep,
                    None,
                ),
            }
        }
        FwReg::StdBmap | FwReg::StdHypBmap | FwReg::VendorHypBmap | FwReg::VendorHypBmap2 => {
            let absence = register::firmware(reg).absence;
            let bits = |d: &crate::profile::ProfileReg| Accepts::Bits {
                writable: d.writable.unwrap_or(0),
                default: d.default,
            };
            match (saved, on_dest) {
                (Some(s), Some(d)) => {
                    let extra = s & !d.writable.unwrap_or(0);
                    if extra == 0 {
                        finding(bits(d), Rule::BitmapSubset, Outcome::Restore, None)
                    } else {
                        finding(
                            bits(d),
                            Rule::BitmapBitsMissing,
                            Outcome::Refuse,
                            Some(Remedy::ClearBits { reg, bits: extra }),
                        )
                    }
                }
                (Some(s), None) if absence == Some(s) => finding(
                    Accepts::Missing,
                    Rule::BitmapZeroIsAbsence,
                    Outcome::Skip,
                    None,
                ),
                (Some(s), None) => missing(
                    Rule::BitmapNoRegister,
                    Some(match absence {
                        Some(a) => Remedy::ClearBits { reg, bits: s & !a },
                        None => Remedy::HostWith(Need::Register(reg)),
                    }),
                ),
                (None, Some(d)) => match absence {
                    Some(a) if a == d.default => {
                        finding(bits(d), Rule::NotSavedDefaultIsAbsence, Outcome::Keep, None)
                    }
                    Some(a) if a & !d.writable.unwrap_or(0) == 0 => {
                        finding(bits(d), Rule::NotSavedWriteAbsence, Outcome::Pin(a), None)
                    }
                    _ => finding(
                        bits(d),
                        Rule::BitmapNotSaved,
                        Outcome::Refuse,
                        Some(Remedy::HostWith(Need::KnownRegister)),
                    ),
                },
                (None, None) => None,
            }
        }
    }
}
