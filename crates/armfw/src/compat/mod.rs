//! Migration compatibility: can the firmware state a guest has seen be restored on another
//! host, and how; and pool baselines.
//!
//! [`check`] takes a [`Snapshot`] and a destination [`Profile`] and gives a [`Report`]:
//!
//! - a [`Finding`] per firmware register (and per capability the snapshot uses): the saved
//!   value, what the destination accepts, the [`Rule`] that decides, the [`Outcome`], and a
//!   [`Remedy`] where the answer is no;
//! - the [`Verdict`]: compatible (a restore that writes every saved register back succeeds
//!   and the guest's firmware does not change), compatible with armfw's plan, or
//!   incompatible;
//! - the plan ([`PlanAction`]s, in order) that [`RestorePolicy::Armfw`] carries out;
//! - the predicted outcome of the strict policy ([`RestorePolicy::Strict`], what today's VMMs
//!   do): success, or the first operation KVM refuses and its errno.
//!
//! [`baseline`] gives the firmware configuration every host of a pool accepts.
//!
//! # The rule behind every plan
//!
//! The guest-visible firmware never changes under a running guest. armfw never lowers or
//! raises the PSCI version, never removes or adds a service bit, never lets a guest move to a
//! host whose mitigation level is below what it was told. A register is left out only where its
//! saved value means exactly what the register's absence means on the destination. Where the
//! guest has seen something the destination cannot give, the answer is a refusal with the
//! reason and the remedy. Each [`Rule`] says why it is safe.
//!
//! # Cost
//!
//! [`check`] does not allocate: the report holds fixed-size lists, and every rule is a
//! comparison of integers. It reads the snapshot's parsed form; parsing is separate.
//!
//! # What it does not check
//!
//! Only the firmware: PSCI, SMCCC services, the firmware pseudo-registers, the SMCCC filter
//! and the system-suspend capability. CPU features, ID registers, SVE, the GIC, timers and
//! memory are the VMM's.
//!
//! [`RestorePolicy::Armfw`]: crate::migrate::RestorePolicy::Armfw
//! [`RestorePolicy::Strict`]: crate::migrate::RestorePolicy::Strict

mod baseline;
mod report;

pub use baseline::{ApplyError, Baseline, BaselineError, WorkaroundSpread, baseline};

use std::fmt;

use crate::abi::{Errno, FwReg, PsciVersion};
use crate::profile::Profile;
use crate::register::{self, LevelKind, SetContext, SetRule, WorkaroundLevel};
use crate::snapshot::{MAX_REGISTERS, Snapshot, Step};

/// The answer of [`check`].
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

/// The rule that decides a finding. [`Rule::text`] says what it checks and why the outcome is
/// safe for the guest; `docs/migration.md` lists them all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rule {
    /// PSCI_VERSION holds a version the destination offers: written back, the guest keeps it.
    PsciVersionOffered,
    /// PSCI_VERSION holds a version the destination does not offer.
    PsciVersionNotOffered,
    /// The VM's vCPUs use PSCI_0_2 and the destination cannot give it.
    PsciFeatureMissing,
    /// A PSCI 0.1 VM: every kernel accepts 0.1 on vCPUs without PSCI_0_2.
    Psci01,
    /// The destination's WORKAROUND level is the saved one.
    WorkaroundWithinHost,
    /// A WORKAROUND level below the destination's: KVM accepts it, but the guest would be
    /// told another mitigation state.
    WorkaroundBelowHost,
    /// A WORKAROUND level above the destination's.
    WorkaroundAboveHost,
    /// A WORKAROUND level that promises nothing, onto a kernel without the register.
    WorkaroundPromisesNothing,
    /// A WORKAROUND level that promises something, onto a kernel without the register.
    WorkaroundNoRegister,
    /// A WORKAROUND register the source kernel did not have.
    WorkaroundNotSaved,
    /// A bitmap whose bits the destination all supports.
    BitmapSubset,
    /// A bitmap with bits the destination does not support.
    BitmapBitsMissing,
    /// VENDOR_HYP_BMAP_2 = 0 onto a kernel without the register.
    BitmapZeroIsAbsence,
    /// A bitmap onto a kernel without the register, where that changes what the guest sees.
    BitmapNoRegister,
    /// VENDOR_HYP_BMAP_2 not saved; the destination's default advertises nothing either.
    NotSavedDefaultIsAbsence,
    /// VENDOR_HYP_BMAP_2 not saved; the destination's default advertises something, so armfw
    /// writes 0.
    NotSavedWriteAbsence,
    /// A bitmap the source kernel did not have, whose absence has no register value.
    BitmapNotSaved,
    /// A register armfw does not know.
    UnknownRegister,
    /// The system-suspend capability, present on the destination.
    SystemSuspendOffered,
    /// The system-suspend capability, missing on the destination.
    SystemSuspendMissing,
    /// SMCCC filter ranges, and a destination with the filter.
    SmcccFilterOffered,
    /// SMCCC filter ranges, and a destination without the filter.
    SmcccFilterMissing,
}

impl Rule {
    /// Every rule.
    pub const ALL: [Rule; 22] = [
        Rule::PsciVersionOffered,
        Rule::PsciVersionNotOffered,
        Rule::PsciFeatureMissing,
        Rule::Psci01,
        Rule::WorkaroundWithinHost,
        Rule::WorkaroundBelowHost,
        Rule::WorkaroundAboveHost,
        Rule::WorkaroundPromisesNothing,
        Rule::WorkaroundNoRegister,
        Rule::WorkaroundNotSaved,
        Rule::BitmapSubset,
        Rule::BitmapBitsMissing,
        Rule::BitmapZeroIsAbsence,
        Rule::BitmapNoRegister,
        Rule::NotSavedDefaultIsAbsence,
        Rule::NotSavedWriteAbsence,
        Rule::BitmapNotSaved,
        Rule::UnknownRegister,
        Rule::SystemSuspendOffered,
        Rule::SystemSuspendMissing,
        Rule::SmcccFilterOffered,
        Rule::SmcccFilterMissing,
    ];

    /// The rule's name in JSON (snake case).
    pub const fn name(self) -> &'static str {
        match self {
            Rule::PsciVersionOffered => "psci_version_offered",
            Rule::PsciVersionNotOffered => "psci_version_not_offered",
            Rule::PsciFeatureMissing => "psci_feature_missing",
            Rule::Psci01 => "psci_0_1",
            Rule::WorkaroundWithinHost => "workaround_within_host",
            Rule::WorkaroundBelowHost => "workaround_below_host",
            Rule::WorkaroundAboveHost => "workaround_above_host",
            Rule::WorkaroundPromisesNothing => "workaround_promises_nothing",
            Rule::WorkaroundNoRegister => "workaround_no_register",
            Rule::WorkaroundNotSaved => "workaround_not_saved",
            Rule::BitmapSubset => "bitmap_subset",
            Rule::BitmapBitsMissing => "bitmap_bits_missing",
            Rule::BitmapZeroIsAbsence => "bitmap_zero_is_absence",
            Rule::BitmapNoRegister => "bitmap_no_register",
            Rule::NotSavedDefaultIsAbsence => "not_saved_default_is_absence",
            Rule::NotSavedWriteAbsence => "not_saved_write_absence",
            Rule::BitmapNotSaved => "bitmap_not_saved",
            Rule::UnknownRegister => "unknown_register",
            Rule::SystemSuspendOffered => "system_suspend_offered",
            Rule::SystemSuspendMissing => "system_suspend_missing",
            Rule::SmcccFilterOffered => "smccc_filter_offered",
            Rule::SmcccFilterMissing => "smccc_filter_missing",
        }
    }

    /// What the rule checks, and why its outcome is safe for the guest (with the kernel source
    /// of the fact).
    pub const fn text(self) -> &'static str {
        match self {
            Rule::PsciVersionOffered => {
                "the destination offers the saved PSCI version; armfw writes it back, so the guest keeps the version it has seen instead of the destination's default (kvm_arm_set_fw_reg, fw-pseudo-registers.rst)"
            }
            Rule::PsciVersionNotOffered => {
                "the guest has seen a PSCI version the destination does not offer; KVM refuses it with EINVAL, and running the guest on another version would change the calls it may use"
            }
            Rule::PsciFeatureMissing => {
                "the vCPUs use SMCCC-style PSCI (KVM_ARM_VCPU_PSCI_0_2), which the destination cannot give; the guest would lose every PSCI call it knows"
            }
            Rule::Psci01 => {
                "a PSCI 0.1 VM: KVM accepts 0.1 on vCPUs without PSCI_0_2 on every kernel, so the guest keeps KVM's 0.1 calls"
            }
            Rule::WorkaroundWithinHost => {
                "the destination's level is the saved one; KVM accepts it (SET only validates) and the guest's ARCH_FEATURES answers stay what they were"
            }
            Rule::WorkaroundBelowHost => {
                "KVM accepts the saved level (SET only checks it is not above the host's) but stores nothing: the guest's ARCH_FEATURES answer comes from the destination's own mitigation state, so the guest would be told something else under its feet (measured: cortex-a72 to max, WORKAROUND_1 NOT_AVAIL became NOT_REQUIRED)"
            }
            Rule::WorkaroundAboveHost => {
                "the guest was told a level the destination does not reach (it may skip a mitigation the destination needs); KVM refuses with EINVAL, the check that exists to stop such a move (99adb567632b)"
            }
            Rule::WorkaroundPromisesNothing => {
                "the saved level is NOT_AVAIL (WORKAROUND_2: NOT_AVAIL or UNKNOWN), which every kernel accepts and stores nothing for; not writing it onto a kernel without the register skips no check and changes nothing the guest sees"
            }
            Rule::WorkaroundNoRegister => {
                "the saved level promises a mitigation state and the destination has no register to check it against; the move cannot be shown safe"
            }
            Rule::WorkaroundNotSaved => {
                "the source kernel had no such register, which compares as NOT_AVAIL: a level every kernel accepts; the destination reports its own level, as KVM does for any register userspace does not write"
            }
            Rule::BitmapSubset => {
                "every saved service bit is one the destination supports; armfw writes the bitmap back before the first KVM_RUN, so the guest keeps exactly its services (kvm_arm_set_fw_reg_bmap)"
            }
            Rule::BitmapBitsMissing => {
                "the guest may use services (bits) the destination does not support; KVM refuses with EINVAL and the calls would start failing under the guest"
            }
            Rule::BitmapZeroIsAbsence => {
                "VENDOR_HYP_BMAP_2 = 0 advertises no service, exactly what a kernel without the register advertises (KVM_FEATURES word 2 reads 0 before 6.15); dropping it changes nothing the guest sees"
            }
            Rule::BitmapNoRegister => {
                "the destination has no register for this bitmap, so it cannot withhold or offer these services as the saved value says; what the guest sees would change"
            }
            Rule::NotSavedDefaultIsAbsence => {
                "the source kernel had no VENDOR_HYP_BMAP_2; the destination's default (0) advertises nothing, which is what the guest saw; KVM keeps defaults for registers userspace does not write"
            }
            Rule::NotSavedWriteAbsence => {
                "the source kernel had no VENDOR_HYP_BMAP_2, so the guest saw none of its services; armfw writes 0 so the destination's default does not add any"
            }
            Rule::BitmapNotSaved => {
                "the source kernel had no such bitmap (before 5.19): its services were those of that kernel, which no register value describes; the destination's default may differ"
            }
            Rule::UnknownRegister => {
                "armfw does not know this register's meaning, so it cannot show that any destination keeps what the guest saw"
            }
            Rule::SystemSuspendOffered => {
                "the guest may use PSCI SYSTEM_SUSPEND; the destination has KVM_CAP_ARM_SYSTEM_SUSPEND and armfw enables it before the vCPUs exist"
            }
            Rule::SystemSuspendMissing => {
                "the guest may use PSCI SYSTEM_SUSPEND (PSCI_FEATURES said so); the destination lacks KVM_CAP_ARM_SYSTEM_SUSPEND, so the call would start failing"
            }
            Rule::SmcccFilterOffered => {
                "the VMM filtered SMCCC calls; the destination has the filter and armfw installs the same ranges before the first KVM_RUN"
            }
            Rule::SmcccFilterMissing => {
                "the VMM filtered SMCCC calls (denied or forwarded them); the destination has no SMCCC filter (before 6.4), so the guest's calls would be answered differently"
            }
        }
    }
}

/// What happens to a subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

/// One subject of a [`Report`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
/// [module documentation](self). `snapshot` should have passed [`Snapshot::validate`] (every
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
        let ok = dest.capabilities.system_suspend;
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
        let ok = dest.capabilities.smccc_filter;
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
    for reg in FwReg::ALL {
        let saved = saved_regs
            .iter()
            .find(|r| r.id == reg.id())
            .map(|r| r.value);
        let Some(f) = assess(reg, saved, snapshot.vm.psci_0_2, dest) else {
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

fn assess(reg: FwReg, saved: Option<u64>, psci_0_2: bool, dest: &Profile) -> Option<Finding> {
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
            let offered = VersionSet::from_versions(&dest.psci_versions);
            if !psci_0_2 {
                let outcome = if saved == Some(u64::from(PsciVersion::V0_1.0)) {
                    Outcome::Restore
                } else {
                    Outcome::Refuse
                };
                return finding(Accepts::Psci01, Rule::Psci01, outcome, None);
            }
            if !dest.capabilities.psci_0_2 {
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
            let accepted = |s| strict_set(dest, psci_0_2, reg.id(), s).is_ok();
            match (saved, on_dest) {
                (Some(s), Some(d)) if s == d.default => finding(
                    accepts(d.default),
                    Rule::WorkaroundWithinHost,
                    Outcome::Restore,
                    None,
                ),
                (Some(s), Some(d)) if accepted(s) => finding(
                    accepts(d.default),
                    Rule::WorkaroundBelowHost,
                    Outcome::Refuse,
                    Some(Remedy::HostLevel { reg, level: s }),
                ),
                (Some(s), Some(d)) => finding(
                    accepts(d.default),
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
                    accepts(d.map_or(0, |d| d.default)),
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

/// What KVM on `dest` answers to SET_ONE_REG(`id`, `value`) on a fresh VM's vCPU: the id
/// checks of [`crate::Firmware::set_one_reg`], then the register table's rule.
fn strict_set(dest: &Profile, psci_0_2: bool, id: u64, value: u64) -> Result<(), Errno> {
    let unknown = dest.rules().unknown_fw_reg_errno();
    let reg = FwReg::from_id(id)
        .filter(|r| dest.register(*r).is_some())
        .ok_or(unknown)?;
    let ctx = SetContext {
        psci_0_2,
        has_run: false,
        current: dest.register(reg).map_or(0, |r| r.default),
    };
    register::firmware(reg)
        .rule
        .set(reg, dest, ctx, value)
        .map(|_| ())
}

/// The strict policy on a fresh destination VM: the capability, vCPU 0's init, the filter
/// ranges, then vCPU 0's registers in saved order (every vCPU gets the same values, so the
/// first refusal is on vCPU 0).
fn predict_strict(
    snapshot: &Snapshot,
    saved: &[crate::snapshot::SavedReg],
    dest: &Profile,
) -> StrictOutcome {
    let fail = |step, errno| StrictOutcome::Fails { step, errno };
    if snapshot.vm.system_suspend && !dest.capabilities.system_suspend {
        return fail(Step::EnableSystemSuspend, Errno::EINVAL);
    }
    if snapshot.vm.psci_0_2 && !dest.capabilities.psci_0_2 {
        return fail(Step::InitVcpu { vcpu: 0 }, Errno::EINVAL);
    }
    if !snapshot.vm.smccc_filter.is_empty() && !dest.capabilities.smccc_filter {
        return fail(Step::SetSmcccFilter { range: 0 }, Errno::EINVAL);
    }
    for r in saved {
        if let Err(errno) = strict_set(dest, snapshot.vm.psci_0_2, r.id, r.value) {
            return fail(Step::SetOneReg { vcpu: 0, id: r.id }, errno);
        }
    }
    StrictOutcome::Ok
}

#[cfg(test)]
mod tests;
