//! The firmware pseudo-registers, one row each, in KVM_GET_REG_LIST order (Linux
//! `kvm_arm_fw_reg_ids[]` in `arch/arm64/kvm/hypercalls.c`;
//! `Documentation/virt/kvm/arm/fw-pseudo-registers.rst`).

use super::{Change, DefaultFrom, LevelKind, RegClass, RegDesc, Scope, SetRule, Visibility};
use crate::abi::FwReg;
use crate::profile::Profile;
use crate::release::Release;

const HYPERCALLS: &str = "arch/arm64/kvm/hypercalls.c: kvm_arm_get_fw_reg(), kvm_arm_set_fw_reg(); Documentation/virt/kvm/arm/fw-pseudo-registers.rst";
const BITMAPS: &str = "arch/arm64/kvm/hypercalls.c: kvm_arm_set_fw_reg_bmap(), KVM_ARM_SMCCC_*_BMAP_BIT_MAX; Documentation/virt/kvm/arm/fw-pseudo-registers.rst";

/// 5.2 (99adb567632b): an id the kernel does not have gives ENOENT; EINVAL before.
const ENOENT_5_2: Change = Change {
    release: Release::new(5, 2, 0),
    what: "an unknown firmware register id gives ENOENT instead of EINVAL (99adb567632b)",
};

/// 6.4 (a25bc8486f9c): SET checks the id's size first.
const SIZE_CHECK_6_4: Change = Change {
    release: Release::new(6, 4, 0),
    what: "SET refuses a size other than 64 bits before looking at the value (a25bc8486f9c)",
};

const fn row(
    reg: FwReg,
    rule: SetRule,
    scope: Scope,
    since: Release,
    changes: &'static [Change],
    meaning: &'static str,
    source: &'static str,
) -> RegDesc {
    RegDesc {
        id: reg.id(),
        name: reg.name(),
        class: if reg.is_bitmap() {
            RegClass::FirmwareBitmap
        } else {
            RegClass::Firmware
        },
        scope,
        visibility: Visibility::Listed,
        default: DefaultFrom::Probed,
        rule,
        since,
        changes,
        absence: match reg {
            FwReg::VendorHypBmap2 => Some(0),
            _ => None,
        },
        meaning,
        source,
    }
}

/// The firmware registers, indexed by [`FwReg::index`].
pub static FIRMWARE: [RegDesc; FwReg::ALL.len()] = [
    row(
        FwReg::PsciVersion,
        SetRule::PsciVersion,
        Scope::Vm,
        Release::new(4, 17, 0),
        &[
            ENOENT_5_2,
            Change {
                release: Release::new(5, 18, 0),
                what: "PSCI 1.1 offered and the default (kvm-arm64/psci-1.1)",
            },
            SIZE_CHECK_6_4,
            Change {
                release: Release::new(6, 13, 0),
                what: "PSCI 1.2 and 1.3 offered, 1.3 the default",
            },
        ],
        "PSCI version the guest sees (major<<16|minor); VM-wide, writable at any time; 0.1 only without PSCI_0_2",
        "arch/arm64/kvm/psci.c, hypercalls.c: kvm_arm_set_fw_reg() KVM_REG_ARM_PSCI_VERSION; include/kvm/arm_psci.h",
    ),
    row(
        FwReg::SmcccArchWorkaround1,
        SetRule::HostLevel(LevelKind::Spectre),
        Scope::Host,
        Release::new(5, 2, 0),
        &[SIZE_CHECK_6_4],
        "host Spectre-v2 level (0 NOT_AVAIL, 1 AVAIL, 2 NOT_REQUIRED); SET accepts a level up to the host's and stores nothing",
        HYPERCALLS,
    ),
    row(
        FwReg::SmcccArchWorkaround2,
        SetRule::HostLevel(LevelKind::Ssbd),
        Scope::Host,
        Release::new(5, 2, 0),
        &[
            Change {
                release: Release::new(5, 10, 0),
                what: "Spectre rework: GET reports only 0 NOT_AVAIL or 3 NOT_REQUIRED; SET maps {0,1} to 0 and {2,3} to 3",
            },
            SIZE_CHECK_6_4,
            Change {
                release: WA2_FOLLOWS_VM_SSBS,
                what: "the level follows the VM's ID_AA64PFR1_EL1.SSBS: a host mitigated by SSBS gives 3 NOT_REQUIRED to a VM that does not show SSBS (vm_level)",
            },
        ],
        "host Spectre-v4/SSB level (0 NOT_AVAIL, 3 NOT_REQUIRED; 1, 2 and bit 4 ENABLED are legacy); SET accepts levels whose mapping ({0,1}->0, {2,3}->3) is up to the host's and stores nothing",
        HYPERCALLS,
    ),
    row(
        FwReg::SmcccArchWorkaround3,
        SetRule::HostLevel(LevelKind::Spectre),
        Scope::Host,
        Release::new(5, 17, 0),
        &[SIZE_CHECK_6_4],
        "host Spectre-BHB level (0 NOT_AVAIL, 1 AVAIL, 2 NOT_REQUIRED); SET accepts a level up to the host's and stores nothing",
        "arch/arm64/kvm/hypercalls.c (a5905d6af492); Documentation/virt/kvm/arm/fw-pseudo-registers.rst",
    ),
    row(
        FwReg::StdBmap,
        SetRule::FeatureBitmap,
        Scope::Vm,
        Release::new(5, 19, 0),
        &[SIZE_CHECK_6_4],
        "standard services the guest may call: bit 0 TRNG 1.0; VM-wide; EBUSY for a change once the VM has run",
        BITMAPS,
    ),
    row(
        FwReg::StdHypBmap,
        SetRule::FeatureBitmap,
        Scope::Vm,
        Release::new(5, 19, 0),
        &[SIZE_CHECK_6_4],
        "standard hypervisor services: bit 0 PV time; VM-wide; EBUSY for a change once the VM has run",
        BITMAPS,
    ),
    row(
        FwReg::VendorHypBmap,
        SetRule::FeatureBitmap,
        Scope::Vm,
        Release::new(5, 19, 0),
        &[SIZE_CHECK_6_4],
        "KVM vendor services: bit 0 FEATURES and CALL_UID, bit 1 PTP; VM-wide; EBUSY for a change once the VM has run",
        BITMAPS,
    ),
    row(
        FwReg::VendorHypBmap2,
        SetRule::FeatureBitmap,
        Scope::Vm,
        Release::new(6, 15, 0),
        &[],
        "KVM vendor services 64..127, advertised only (bit 0 DISCOVER_IMPL_VER, bit 1 DISCOVER_IMPL_CPUS; userspace serves them); VM-wide; EBUSY for a change once the VM has run",
        BITMAPS,
    ),
];

/// The release from which SMCCC_ARCH_WORKAROUND_2's level follows the VM's
/// ID_AA64PFR1_EL1.SSBS instead of the host's (`get_kernel_wa_level()` and the ARCH_FEATURES
/// answer test `kvm_has_feat(kvm, ID_AA64PFR1_EL1, SSBS, IMP)` where they tested
/// `cpus_have_final_cap(ARM64_SSBS)`; patch "KVM: arm64: Use kvm_has_feat() to check if
/// FEAT_SSBS is advertised to the guest"). Inferred: the patch belongs to the series that
/// made ID_AA64PFR1_EL1.SSBS writable. Measured by conformance/migrate: 6.12 and 7.2 follow
/// the VM (a saved NOT_REQUIRED from a cortex-a53 is refused on a max vCPU while the VM still
/// shows SSBS and accepted once the restore has written the a53's ID_AA64PFR1_EL1); 6.1
/// does not.
pub const WA2_FOLLOWS_VM_SSBS: Release = Release::new(6, 11, 0);

/// Whether a VM shows no SSBS where its host has it: ID_AA64PFR1_EL1.SSBS (bits 7:4) of the
/// VM's value `vm_pfr1` is 0 and of the host's `host_pfr1` is not.
pub const fn ssbs_hidden(host_pfr1: u64, vm_pfr1: u64) -> bool {
    (host_pfr1 >> 4) & 0xf != 0 && (vm_pfr1 >> 4) & 0xf == 0
}

/// The level of the WORKAROUND register `reg` that a VM on the host `host` sees (GET) and
/// that SET compares with: the host's, except that from [`WA2_FOLLOWS_VM_SSBS`]
/// SMCCC_ARCH_WORKAROUND_2 of a VM that does not show SSBS ([`ssbs_hidden`]) on a host that
/// has it is 3 NOT_REQUIRED (the host is then SPECTRE_MITIGATED, and KVM's level for a VM
/// without SSBS falls through to NOT_REQUIRED). `None` where the host lacks the register.
pub fn vm_level(reg: FwReg, host: &Profile, ssbs_hidden: bool) -> Option<u64> {
    let level = host.workaround_level(reg)?;
    if reg == FwReg::SmcccArchWorkaround2 && ssbs_hidden && host.release() >= WA2_FOLLOWS_VM_SSBS {
        return Some(crate::abi::reg::KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_NOT_REQUIRED);
    }
    Some(level)
}
