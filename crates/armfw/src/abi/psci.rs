//! PSCI (Arm DEN0022, up to 1.3 issue F.b): function ids, return codes, versions and affinity.
//!
//! Ids follow Linux `include/uapi/linux/psci.h`; KVM's own PSCI 0.1 ids (which do not follow
//! SMCCC) come from `arch/arm64/include/uapi/asm/kvm.h` (`KVM_PSCI_FN_BASE` 0x95c1ba5e).

use std::fmt;

// KVM's own PSCI 0.1 ids do not follow SMCCC: they are raw values, outside the function
// table ([`super::function`]), wherever they are used.

/// KVM's PSCI 0.1 CPU_SUSPEND (`KVM_PSCI_FN_CPU_SUSPEND`).
pub const KVM_PSCI_FN_CPU_SUSPEND: u32 = 0x95c1_ba5e;
/// KVM's PSCI 0.1 CPU_OFF.
pub const KVM_PSCI_FN_CPU_OFF: u32 = 0x95c1_ba5f;
/// KVM's PSCI 0.1 CPU_ON.
pub const KVM_PSCI_FN_CPU_ON: u32 = 0x95c1_ba60;
/// KVM's PSCI 0.1 MIGRATE.
pub const KVM_PSCI_FN_MIGRATE: u32 = 0x95c1_ba61;

// The PSCI function ids (`PSCI_0_2_FN_*`, `PSCI_1_x_FN*`) are rows of the function table.
pub use super::function::psci::*;

/// PSCI return: success.
pub const PSCI_RET_SUCCESS: i64 = 0;
/// PSCI return: not supported.
pub const PSCI_RET_NOT_SUPPORTED: i64 = -1;
/// PSCI return: invalid parameters.
pub const PSCI_RET_INVALID_PARAMS: i64 = -2;
/// PSCI return: denied.
pub const PSCI_RET_DENIED: i64 = -3;
/// PSCI return: already on.
pub const PSCI_RET_ALREADY_ON: i64 = -4;
/// PSCI return: on pending.
pub const PSCI_RET_ON_PENDING: i64 = -5;
/// PSCI return: internal failure.
pub const PSCI_RET_INTERNAL_FAILURE: i64 = -6;
/// PSCI return: not present.
pub const PSCI_RET_NOT_PRESENT: i64 = -7;
/// PSCI return: disabled.
pub const PSCI_RET_DISABLED: i64 = -8;
/// PSCI return: invalid address.
pub const PSCI_RET_INVALID_ADDRESS: i64 = -9;

/// AFFINITY_INFO: at least one matching core is on.
pub const PSCI_0_2_AFFINITY_LEVEL_ON: i64 = 0;
/// AFFINITY_INFO: every matching core is off.
pub const PSCI_0_2_AFFINITY_LEVEL_OFF: i64 = 1;
/// AFFINITY_INFO: on pending (KVM never answers it).
pub const PSCI_0_2_AFFINITY_LEVEL_ON_PENDING: i64 = 2;

/// MIGRATE_INFO_TYPE: a uniprocessor Trusted OS that can migrate.
pub const PSCI_0_2_TOS_UP_MIGRATE: i64 = 0;
/// MIGRATE_INFO_TYPE: a uniprocessor Trusted OS that cannot migrate.
pub const PSCI_0_2_TOS_UP_NO_MIGRATE: i64 = 1;
/// MIGRATE_INFO_TYPE: multiprocessor or no Trusted OS (KVM's answer).
pub const PSCI_0_2_TOS_MP: i64 = 2;

/// SYSTEM_RESET2 reset type: architectural warm reset.
pub const PSCI_1_1_RESET_TYPE_SYSTEM_WARM_RESET: u32 = 0;
/// SYSTEM_RESET2 reset type: first vendor-specific type.
pub const PSCI_1_1_RESET_TYPE_VENDOR_START: u32 = 0x8000_0000;
/// SYSTEM_OFF2 type: hibernate-off (a bit in PSCI_FEATURES' answer).
pub const PSCI_1_3_OFF_TYPE_HIBERNATE_OFF: u32 = 1;

/// A PSCI version: `major << 16 | minor`, as PSCI_VERSION returns it and as
/// `KVM_REG_ARM_PSCI_VERSION` holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PsciVersion(pub u32);

impl PsciVersion {
    /// KVM's PSCI 0.1 (KVM's own function ids).
    pub const V0_1: PsciVersion = PsciVersion(0x1);
    /// PSCI 0.2.
    pub const V0_2: PsciVersion = PsciVersion(0x2);
    /// PSCI 1.0.
    pub const V1_0: PsciVersion = PsciVersion(0x1_0000);
    /// PSCI 1.1.
    pub const V1_1: PsciVersion = PsciVersion(0x1_0001);
    /// PSCI 1.2.
    pub const V1_2: PsciVersion = PsciVersion(0x1_0002);
    /// PSCI 1.3.
    pub const V1_3: PsciVersion = PsciVersion(0x1_0003);
    /// Every version KVM has ever implemented, oldest first.
    pub const KVM_ALL: [PsciVersion; 6] = [
        Self::V0_1,
        Self::V0_2,
        Self::V1_0,
        Self::V1_1,
        Self::V1_2,
        Self::V1_3,
    ];

    /// The version from its parts.
    pub const fn new(major: u16, minor: u16) -> PsciVersion {
        PsciVersion(((major as u32) << 16) | minor as u32)
    }

    /// The major version.
    pub const fn major(self) -> u16 {
        (self.0 >> 16) as u16
    }

    /// The minor version.
    pub const fn minor(self) -> u16 {
        (self.0 & 0xffff) as u16
    }

    /// Whether this is one of the versions KVM implements.
    pub fn is_kvm_version(self) -> bool {
        Self::KVM_ALL.contains(&self)
    }
}

impl fmt::Display for PsciVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major(), self.minor())
    }
}

/// An MPIDR value as a PSCI caller passes it (x1 of CPU_ON and AFFINITY_INFO).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mpidr(pub u64);

impl Mpidr {
    /// The affinity fields Aff3 (39:32), Aff2 (23:16), Aff1 (15:8) and Aff0 (7:0):
    /// Linux `MPIDR_HWID_BITMASK`.
    pub const MPIDR_HWID_BITMASK: u64 = 0xff_00ff_ffff;

    /// The affinity KVM gives vCPU `index` (Linux `reset_mpidr()`): Aff0 = index % 16,
    /// Aff1 = (index / 16) % 256, Aff2 = (index / 4096) % 256.
    pub const fn for_vcpu_index(index: usize) -> Mpidr {
        let i = index as u64;
        Mpidr((i & 0x0f) | (((i >> 4) & 0xff) << 8) | (((i >> 12) & 0xff) << 16))
    }

    /// Whether only affinity bits are set (Linux `kvm_psci_valid_affinity()`).
    pub const fn is_valid_affinity(self) -> bool {
        self.0 & !Self::MPIDR_HWID_BITMASK == 0
    }

    /// The affinity bits.
    pub const fn affinity(self) -> u64 {
        self.0 & Self::MPIDR_HWID_BITMASK
    }

    /// The mask AFFINITY_INFO compares at `lowest_affinity_level`: the affinity fields at or
    /// above that level (Linux `psci_affinity_mask()`), or `None` for a level above 3.
    pub const fn affinity_mask(level: u64) -> Option<u64> {
        if level > 3 {
            return None;
        }
        Some(Self::MPIDR_HWID_BITMASK & !((1u64 << (level * 8)) - 1))
    }
}

impl fmt::Display for Mpidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psci_version_encoding_matches_uapi_psci_version_macro() {
        assert_eq!(PsciVersion::new(1, 3), PsciVersion(0x10003));
        assert_eq!(PsciVersion::new(0, 2), PsciVersion(0x2));
        assert_eq!(PsciVersion(0x10001).to_string(), "1.1");
    }

    #[test]
    fn psci_versions_order_naturally() {
        assert!(PsciVersion::V0_2 < PsciVersion::V1_0);
        assert!(PsciVersion::V1_2 < PsciVersion::V1_3);
    }

    #[test]
    fn kvm_0_1_ids_follow_kvm_psci_fn_base() {
        assert_eq!(KVM_PSCI_FN_CPU_SUSPEND, 0x95c1ba5e);
        assert_eq!(KVM_PSCI_FN_MIGRATE, 0x95c1ba5e + 3);
    }

    #[test]
    fn mpidr_for_vcpu_index_matches_kvm_reset_mpidr() {
        assert_eq!(Mpidr::for_vcpu_index(1), Mpidr(0x1));
        assert_eq!(Mpidr::for_vcpu_index(17), Mpidr(0x101));
        assert_eq!(Mpidr::for_vcpu_index(63), Mpidr(0x30f));
    }

    #[test]
    fn affinity_mask_keeps_fields_at_or_above_the_level() {
        assert_eq!(Mpidr::affinity_mask(0), Some(0xff_00ff_ffff));
        assert_eq!(Mpidr::affinity_mask(1), Some(0xff_00ff_ff00));
        assert_eq!(Mpidr::affinity_mask(2), Some(0xff_00ff_0000));
        assert_eq!(Mpidr::affinity_mask(3), Some(0xff_0000_0000));
        assert_eq!(Mpidr::affinity_mask(4), None);
        assert_eq!(Mpidr::affinity_mask(u64::MAX), None);
    }

    #[test]
    fn mpidr_with_bits_outside_the_hwid_mask_is_not_valid() {
        assert!(Mpidr(0xff_00ff_ffff).is_valid_affinity());
        assert!(!Mpidr(0x8000_0001).is_valid_affinity());
        assert!(!Mpidr(0x100_0000).is_valid_affinity());
    }
}
