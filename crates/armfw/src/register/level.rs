//! The WORKAROUND levels as typed values, with KVM's one mapping from register values
//! (Linux `arch/arm64/kvm/hypercalls.c`, `get_kernel_wa_level()` and `kvm_arm_set_fw_reg()`;
//! `Documentation/virt/kvm/arm/fw-pseudo-registers.rst`).

use crate::abi::reg::{
    KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_1_AVAIL, KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_1_NOT_AVAIL,
    KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_1_NOT_REQUIRED, KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_AVAIL,
    KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_ENABLED, KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_NOT_AVAIL,
    KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_NOT_REQUIRED, KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_UNKNOWN,
    KVM_REG_FEATURE_LEVEL_MASK,
};

/// What a host's firmware says of one Spectre mitigation, in the order KVM compares them: a
/// guest told a level may move only to a host at that level or above.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkaroundLevel {
    /// No firmware mitigation offered.
    NotAvail,
    /// The workaround call exists and is needed.
    Avail,
    /// The call exists but is not needed.
    NotRequired,
}

/// How a WORKAROUND register encodes its level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LevelKind {
    /// WORKAROUND_1 (Spectre-v2) and WORKAROUND_3 (Spectre-BHB): 0 NOT_AVAIL, 1 AVAIL,
    /// 2 NOT_REQUIRED; any other value is EINVAL.
    Spectre,
    /// WORKAROUND_2 (Spectre-v4, SSB): 0 NOT_AVAIL, 3 NOT_REQUIRED, and the legacy values
    /// 1 UNKNOWN and 2 AVAIL (with the ENABLED bit, 0x12, as 5.2–5.9 reported it). KVM maps
    /// {0, 1} to NOT_AVAIL and {2, 3} to NOT_REQUIRED before comparing (5.10, "KVM: arm64:
    /// Simplify handling of ARCH_WORKAROUND_2").
    Ssbd,
}

impl LevelKind {
    /// The level KVM compares a SET value at, or `None` where KVM refuses the value whatever
    /// the host's level (EINVAL).
    pub const fn decode(self, value: u64) -> Option<WorkaroundLevel> {
        match self {
            LevelKind::Spectre => match value {
                KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_1_NOT_AVAIL => Some(WorkaroundLevel::NotAvail),
                KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_1_AVAIL => Some(WorkaroundLevel::Avail),
                KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_1_NOT_REQUIRED => {
                    Some(WorkaroundLevel::NotRequired)
                }
                _ => None,
            },
            LevelKind::Ssbd => {
                let level = value & KVM_REG_FEATURE_LEVEL_MASK;
                let enabled = value & KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_ENABLED != 0;
                if value
                    & !(KVM_REG_FEATURE_LEVEL_MASK | KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_ENABLED)
                    != 0
                    || (enabled && level != KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_AVAIL)
                {
                    return None;
                }
                match level {
                    KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_NOT_AVAIL
                    | KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_UNKNOWN => {
                        Some(WorkaroundLevel::NotAvail)
                    }
                    KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_AVAIL
                    | KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_NOT_REQUIRED => {
                        Some(WorkaroundLevel::NotRequired)
                    }
                    _ => None,
                }
            }
        }
    }

    /// The level of a host whose register reads `value`, or `None` where no host of 5.10 or
    /// later reports that value (WORKAROUND_2 hosts report 0 or 3 only).
    pub const fn host_value(self, value: u64) -> Option<WorkaroundLevel> {
        match self {
            LevelKind::Spectre => self.decode(value),
            LevelKind::Ssbd => match value {
                KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_NOT_AVAIL => Some(WorkaroundLevel::NotAvail),
                KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_NOT_REQUIRED => {
                    Some(WorkaroundLevel::NotRequired)
                }
                _ => None,
            },
        }
    }

    /// Every value SET may carry that [`LevelKind::decode`] gives a level, ascending (the
    /// candidates for what a host accepts).
    pub const fn values(self) -> &'static [u64] {
        match self {
            LevelKind::Spectre => &[0, 1, 2],
            LevelKind::Ssbd => &[
                0,
                1,
                2,
                3,
                KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_AVAIL
                    | KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_ENABLED,
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value of the 5-bit field and beyond: exactly the listed values decode.
    #[test]
    fn decode_accepts_exactly_the_listed_values() {
        for kind in [LevelKind::Spectre, LevelKind::Ssbd] {
            for v in 0..0x40u64 {
                assert_eq!(
                    kind.decode(v).is_some(),
                    kind.values().contains(&v),
                    "{kind:?} {v:#x}"
                );
            }
        }
    }

    #[test]
    fn ssbd_maps_legacy_values_as_kvm_does() {
        use WorkaroundLevel::*;
        let k = LevelKind::Ssbd;
        assert_eq!(k.decode(1), Some(NotAvail));
        assert_eq!(k.decode(2), Some(NotRequired));
        assert_eq!(k.decode(0x12), Some(NotRequired));
        assert_eq!(k.decode(0x13), None);
        assert_eq!(k.host_value(2), None);
        assert_eq!(k.host_value(3), Some(NotRequired));
    }
}
