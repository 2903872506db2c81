//! What a check says about each subject: verdicts, findings, outcomes, remedies, the plan.

use std::fmt;

use super::Rule;
use crate::abi::{Errno, FwReg, PsciVersion};
use crate::register::LevelKind;
use crate::snapshot::Step;

/// The answer of [`check`](super::check).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// Writing every saved register back succeeds and the guest's firmware does not change.
    Compatible,
    /// The strict restore would fail (or leave a change), armfw's plan succeeds safely.
    CompatibleWithPlan,
    /// The guest has seen something the destination cannot give.
    Incompatible,
}

impl Verdict {
    /// The name used in JSON and text: `compatible`, `compatible_with_plan`, `incompatible`.
    pub const fn name(self) -> &'static str {
        match self {
            Verdict::Compatible => "compatible",
            Verdict::CompatibleWithPlan => "compatible_with_plan",
            Verdict::Incompatible => "incompatible",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A firmware register, by ONE_REG id (possibly one armfw does not know).
    Register(u64),
    /// `KVM_CAP_ARM_SYSTEM_SUSPEND`, enabled on the source VM.
    SystemSuspend,
    /// The SMCCC filter, configured on the source VM.
    SmcccFilter,
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Subject::Register(id) => match FwReg::from_id(id) {
                Some(reg) => f.write_str(reg.name()),
                None => write!(f, "{id:#018x}"),
            },
            Subject::SystemSuspend => f.write_str("SYSTEM_SUSPEND capability"),
            Subject::SmcccFilter => f.write_str("SMCCC filter"),
        }
    }
}

/// A set of PSCI versions (of [`PsciVersion::KVM_ALL`]), without allocation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VersionSet(u8);

impl VersionSet {
    /// The versions of `list` that KVM implements.
    pub fn from_versions(list: &[PsciVersion]) -> VersionSet {
        let mut s = VersionSet(0);
        for v in list {
            s.insert(*v);
        }
        s
    }

    /// Add `v` (ignored unless KVM implements it).
    pub fn insert(&mut self, v: PsciVersion) {
        if let Some(i) = PsciVersion::KVM_ALL.iter().position(|k| *k == v) {
            self.0 |= 1 << i;
        }
    }

    /// Whether `v` is in the set.
    pub fn contains(self, v: PsciVersion) -> bool {
        PsciVersion::KVM_ALL
            .iter()
            .position(|k| *k == v)
            .is_some_and(|i| self.0 & (1 << i) != 0)
    }

    /// The versions in both sets.
    pub const fn intersect(self, other: VersionSet) -> VersionSet {
        VersionSet(self.0 & other.0)
    }

    /// The versions, oldest first.
    pub fn iter(self) -> impl Iterator<Item = PsciVersion> {
        PsciVersion::KVM_ALL
            .into_iter()
            .enumerate()
            .filter(move |(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, v)| v)
    }

    /// The newest version in the set.
    pub fn newest(self) -> Option<PsciVersion> {
        self.iter().last()
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// What the destination accepts for a subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Accepts {
    /// The destination lacks the register or capability (SET gives ENOENT, or EINVAL before
    /// 5.2; the capability's ioctl gives EINVAL).
    Missing,
    /// PSCI_VERSION on vCPUs with PSCI_0_2: these versions.
    PsciVersions(VersionSet),
    /// PSCI_VERSION on vCPUs without PSCI_0_2: only 0.1.
    Psci01,
    /// A WORKAROUND register: the values whose level ([`LevelKind::decode`]) is at most the
    /// host's.
    Level {
        /// How the register encodes its level.
        kind: LevelKind,
        /// The host's value of the register.
        host: u64,
    },
    /// A bitmap: any subset of `writable`; a fresh VM has `default`.
    Bits {
        /// The bits SET accepts.
        writable: u64,
        /// The value of a fresh VM.
        default: u64,
    },
    /// The capability is there.
    Present,
}

/// What happens to a subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// Written back as saved (the strict restore does the same and succeeds).
    Restore,
    /// Not saved; the destination's default stays, and means what the source had.
    Keep,
    /// Not saved; armfw writes this value so the destination means what the source had (the
    /// strict restore would leave the default).
    Pin(u64),
    /// Saved but not written: the destination lacks it and the value means its absence (the
    /// strict restore fails here).
    Skip,
    /// The destination cannot give what the guest has seen.
    Refuse,
}

impl Outcome {
    /// The name used in JSON: `restore`, `keep`, `pin`, `skip`, `refuse`.
    pub const fn name(self) -> &'static str {
        match self {
            Outcome::Restore => "restore",
            Outcome::Keep => "keep",
            Outcome::Pin(_) => "pin",
            Outcome::Skip => "skip",
            Outcome::Refuse => "refuse",
        }
    }
}

/// Something a destination or the source must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Need {
    /// The firmware register.
    Register(FwReg),
    /// KVM_ARM_VCPU_PSCI_0_2.
    PsciFeature,
    /// KVM_CAP_ARM_SYSTEM_SUSPEND.
    SystemSuspend,
    /// The SMCCC filter (Linux 6.4).
    SmcccFilter,
    /// A register armfw knows.
    KnownRegister,
}

/// What would make a refused move work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Remedy {
    /// Create VMs with PSCI_VERSION pinned to at most this version (what the destination
    /// offers); `armfw baseline` with the destination in the pool does it.
    PinPsciVersion {
        /// The newest version the destination offers.
        at_most: PsciVersion,
    },
    /// Create VMs with these bits of the bitmap cleared; a pool baseline does it.
    ClearBits {
        /// The bitmap.
        reg: FwReg,
        /// The bits to clear.
        bits: u64,
    },
    /// Restore on a host whose level of the register is at least this.
    HostLevel {
        /// The WORKAROUND register.
        reg: FwReg,
        /// The level the guest was told (the source host's).
        level: u64,
    },
    /// Restore on a host that has it (or create VMs without using it).
    HostWith(Need),
}

impl fmt::Display for Remedy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Remedy::PinPsciVersion { at_most } => write!(
                f,
                "create the VM with PSCI_VERSION pinned to {at_most} or lower (armfw baseline with this host in the pool), or restore on a host that offers the saved version"
            ),
            Remedy::ClearBits { reg, bits } => write!(
                f,
                "create the VM with {reg} bits {bits:#x} cleared (armfw baseline with this host in the pool), or restore on a host that supports them"
            ),
            Remedy::HostLevel { reg, level } => write!(
                f,
                "restore on a host whose {reg} level is {level}, as the source's was; the level is the host CPU's, no VM setting changes it"
            ),
            Remedy::HostWith(need) => match need {
                Need::Register(reg) => write!(f, "restore on a host whose kernel has {reg}"),
                Need::PsciFeature => f.write_str("restore on a host with KVM_CAP_ARM_PSCI_0_2"),
                Need::SystemSuspend => f.write_str(
                    "restore on a host with KVM_CAP_ARM_SYSTEM_SUSPEND, or create VMs without it",
                ),
                Need::SmcccFilter => f.write_str(
                    "restore on a host with the SMCCC filter (Linux 6.4 or later), or create VMs without filter ranges",
                ),
                Need::KnownRegister => {
                    f.write_str("update armfw, or restore on a host of the source's kernel")
                }
            },
        }
    }
}

/// One subject of a [`Report`](super::Report).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Finding {
    /// What it is about.
    pub subject: Subject,
    /// The saved value (`None`: not saved; for capabilities, 1 = in use).
    pub saved: Option<u64>,
    /// What the destination accepts.
    pub accepts: Accepts,
    /// The rule that decides.
    pub rule: Rule,
    /// What happens.
    pub outcome: Outcome,
    /// What would make it work, for a refusal.
    pub remedy: Option<Remedy>,
}

impl Finding {
    /// Whether the finding makes the move incompatible.
    pub const fn is_refused(&self) -> bool {
        matches!(self.outcome, Outcome::Refuse)
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.subject)?;
        if let (Subject::Register(_), Some(v)) = (self.subject, self.saved) {
            write!(f, " = {v:#x}")?;
        }
        write!(f, ": {}", self.rule.text())?;
        if let Some(r) = self.remedy {
            write!(f, "; remedy: {r}")?;
        }
        Ok(())
    }
}

/// One step of armfw's restore plan, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PlanAction {
    /// Enable KVM_CAP_ARM_SYSTEM_SUSPEND (before the vCPUs exist).
    EnableSystemSuspend,
    /// Install the snapshot's SMCCC filter ranges (before the first KVM_RUN).
    InstallSmcccFilter {
        /// How many ranges.
        ranges: usize,
    },
    /// KVM_SET_ONE_REG on every vCPU, before the first KVM_RUN.
    Write {
        /// The register id.
        id: u64,
        /// The value.
        value: u64,
    },
    /// Leave the saved register out.
    Skip {
        /// The register id.
        id: u64,
        /// Why that is safe.
        rule: Rule,
    },
}

/// The predicted outcome of the strict policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StrictOutcome {
    /// Every operation succeeds.
    Ok,
    /// The first operation KVM refuses ends the restore.
    Fails {
        /// The operation.
        step: Step,
        /// KVM's errno.
        errno: Errno,
    },
}
