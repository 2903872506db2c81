//! ONE_REG ids of the whole vCPU (Linux `arch/arm64/include/uapi/asm/kvm.h`,
//! `Documentation/virt/kvm/api.rst` "KVM_SET_ONE_REG" arm64): how an id encodes its class,
//! size and index, and the ids the model names. The firmware registers are [`super::FwReg`].

use super::reg::{KVM_REG_ARM64, KVM_REG_SIZE_U64};

/// `KVM_REG_ARM64_SYSREG` (class 0x13) shifted into place.
pub const KVM_REG_ARM64_SYSREG: u64 = 0x0013 << 16;

/// The ONE_REG id of the 64-bit system register (op0, op1, CRn, CRm, op2):
/// `KVM_REG_ARM64 | KVM_REG_SIZE_U64 | 0x13 << 16 | op0 << 14 | op1 << 11 | CRn << 7 |
/// CRm << 3 | op2` (each field masked to its width).
pub const fn sysreg_id(op0: u64, op1: u64, crn: u64, crm: u64, op2: u64) -> u64 {
    KVM_REG_ARM64
        | KVM_REG_SIZE_U64
        | KVM_REG_ARM64_SYSREG
        | (op0 & 3) << 14
        | (op1 & 7) << 11
        | (crn & 0xf) << 7
        | (crm & 0xf) << 3
        | (op2 & 7)
}

/// The (op0, op1, CRn, CRm, op2) encoding in the index of a system-register id.
pub const fn sysreg_encoding(id: u64) -> (u8, u8, u8, u8, u8) {
    (
        field(id, 14, 3),
        field(id, 11, 7),
        field(id, 7, 0xf),
        field(id, 3, 0xf),
        field(id, 0, 7),
    )
}

/// Bits `shift..` of `id` under `mask` (at most 4 bits wide).
const fn field(id: u64, shift: u32, mask: u64) -> u8 {
    ((id >> shift) & mask & 0xf) as u8
}

/// `KVM_REG_ARM64_SVE_VLS` (U512): bit vq−1 set for each vector length 128·vq bits.
pub const SVE_VLS: u64 = 0x6060_0000_0015_ffff;

/// `KVM_REG_ARM_TIMER_CTL` (CNTV_CTL_EL0).
pub const TIMER_CTL: u64 = sysreg_id(3, 3, 14, 3, 1);
/// `KVM_REG_ARM_TIMER_CNT`: the virtual counter; the uapi gives it (3, 3, 14, 3, 2), which
/// is CNTV_CVAL_EL0's encoding (a swap kept for the ABI).
pub const TIMER_CNT: u64 = sysreg_id(3, 3, 14, 3, 2);
/// `KVM_REG_ARM_TIMER_CVAL`: the virtual timer's compare value, under CNTVCT_EL0's
/// encoding (3, 3, 14, 0, 2).
pub const TIMER_CVAL: u64 = sysreg_id(3, 3, 14, 0, 2);
/// `KVM_REG_ARM_PTIMER_CTL` (CNTP_CTL_EL0, 6.4).
pub const PTIMER_CTL: u64 = sysreg_id(3, 3, 14, 2, 1);
/// `KVM_REG_ARM_PTIMER_CVAL` (CNTP_CVAL_EL0, 6.4).
pub const PTIMER_CVAL: u64 = sysreg_id(3, 3, 14, 2, 2);
/// `KVM_REG_ARM_PTIMER_CNT` (CNTPCT_EL0, 6.4): the physical counter.
pub const PTIMER_CNT: u64 = sysreg_id(3, 3, 14, 0, 1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_the_documented_values() {
        // api.rst and kvm-vcpu-state-facts.md §1.
        assert_eq!(sysreg_id(3, 0, 0, 0, 0), 0x6030_0000_0013_c000); // MIDR_EL1
        assert_eq!(sysreg_id(3, 0, 0, 4, 0), 0x6030_0000_0013_c020); // ID_AA64PFR0_EL1
        assert_eq!(TIMER_CTL, 0x6030_0000_0013_df19);
        assert_eq!(TIMER_CNT, 0x6030_0000_0013_df1a);
        assert_eq!(TIMER_CVAL, 0x6030_0000_0013_df02);
        assert_eq!(PTIMER_CTL, 0x6030_0000_0013_df11);
        assert_eq!(PTIMER_CVAL, 0x6030_0000_0013_df12);
        assert_eq!(PTIMER_CNT, 0x6030_0000_0013_df01);
        assert_eq!(sysreg_encoding(0x6030_0000_0013_c020), (3, 0, 0, 4, 0));
    }
}
