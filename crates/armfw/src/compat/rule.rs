//! The rules that decide findings, each with why its outcome is safe for the guest.

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
