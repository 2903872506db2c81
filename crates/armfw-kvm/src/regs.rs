// SPDX-License-Identifier: Apache-2.0 OR MIT
//! ONE_REG register ids (L:Documentation/virt/kvm/api.rst, "KVM_SET_ONE_REG", arm64).
//!
//! An arm64 id is `KVM_REG_ARM64 | size | class << 16 | index`: bits 55:52 hold log2 of the
//! value's size in bytes, bits 27:16 the class (0x10 core, 0x13 system registers, 0x14
//! firmware, 0x16 firmware feature bitmaps).

use std::mem::offset_of;

use armfw::abi::vcpu_reg::sysreg_id;
use kvm_bindings::{KVM_REG_ARM_CORE, KVM_REG_ARM64, KVM_REG_SIZE_U64, kvm_regs, user_pt_regs};

/// Class of the firmware pseudo-registers (`KVM_REG_ARM_FW`, `0x6030 0000 0014 xxxx`).
pub const CLASS_FW: u16 = 0x14;
/// Class of the firmware feature bitmap registers (`KVM_REG_ARM_FW_FEAT_BMAP`,
/// `0x6030 0000 0016 xxxx`).
pub const CLASS_FW_FEAT_BMAP: u16 = 0x16;

/// Size in bytes of the value of register `id`: 2^((id >> 52) & 0xf).
pub const fn one_reg_size(id: u64) -> usize {
    1 << ((id >> 52) & 0xf)
}

/// The class field of register `id`: `(id >> 16) & 0xfff`.
pub const fn reg_class(id: u64) -> u16 {
    ((id >> 16) & 0xfff) as u16
}

/// Whether `id` is a firmware register (class 0x14 or 0x16), whatever its index and size.
pub const fn is_firmware_reg(id: u64) -> bool {
    matches!(reg_class(id), CLASS_FW | CLASS_FW_FEAT_BMAP)
}

const fn core_reg(offset: usize) -> u64 {
    KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE as u64 | (offset / 4) as u64
}

/// General-purpose register `xn` (n ≤ 30): `0x6030 0000 0010 0000 + 2n`.
///
/// # Panics
///
/// If `n > 30`.
pub const fn x(n: usize) -> u64 {
    assert!(n <= 30, "x0..x30 only");
    core_reg(offset_of!(kvm_regs, regs) + offset_of!(user_pt_regs, regs) + 8 * n)
}

/// `PC`: `0x6030 0000 0010 0040` in api.rst.
pub const PC: u64 = core_reg(offset_of!(kvm_regs, regs) + offset_of!(user_pt_regs, pc));
/// `PSTATE` (SPSR layout): `0x6030 0000 0010 0042`.
pub const PSTATE: u64 = core_reg(offset_of!(kvm_regs, regs) + offset_of!(user_pt_regs, pstate));
/// `ELR_EL1`: `0x6030 0000 0010 0046`.
pub const ELR_EL1: u64 = core_reg(offset_of!(kvm_regs, elr_el1));
/// `MPIDR_EL1` (op0 3, op1 0, CRn 0, CRm 0, op2 5).
pub const MPIDR_EL1: u64 = sysreg_id(3, 0, 0, 0, 5);
/// `ESR_EL1` (3, 0, 5, 2, 0).
pub const ESR_EL1: u64 = sysreg_id(3, 0, 5, 2, 0);
/// `FAR_EL1` (3, 0, 6, 0, 0).
pub const FAR_EL1: u64 = sysreg_id(3, 0, 6, 0, 0);
/// `VBAR_EL1` (3, 0, 12, 0, 0).
pub const VBAR_EL1: u64 = sysreg_id(3, 0, 12, 0, 0);
/// The timer ids, as the core names them (`KVM_REG_ARM_TIMER_CNT`, `KVM_REG_ARM_PTIMER_CNT`).
pub use armfw::abi::vcpu_reg::{PTIMER_CNT, TIMER_CNT};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pc_id_matches_api_rst() {
        assert_eq!(PC, 0x6030_0000_0010_0040);
    }

    #[test]
    fn x0_and_x30_ids_match_api_rst() {
        assert_eq!(
            (x(0), x(30)),
            (0x6030_0000_0010_0000, 0x6030_0000_0010_003c)
        );
    }

    #[test]
    fn pstate_and_elr_ids_match_api_rst() {
        assert_eq!(
            (PSTATE, ELR_EL1),
            (0x6030_0000_0010_0042, 0x6030_0000_0010_0046)
        );
    }

    #[test]
    fn timer_counter_ids_match_the_uapi_header() {
        // arch/arm64/include/uapi/asm/kvm.h: KVM_REG_ARM_TIMER_CNT ARM64_SYS_REG(3, 3, 14, 3, 2),
        // KVM_REG_ARM_PTIMER_CNT ARM64_SYS_REG(3, 3, 14, 0, 1).
        assert_eq!(
            (TIMER_CNT, PTIMER_CNT),
            (0x6030_0000_0013_df1a, 0x6030_0000_0013_df01)
        );
    }

    #[test]
    fn vbar_el1_id_is_sysreg_c600() {
        assert_eq!(VBAR_EL1, 0x6030_0000_0013_c600);
    }

    #[test]
    fn mpidr_el1_id_is_sysreg_c005() {
        assert_eq!(MPIDR_EL1, 0x6030_0000_0013_c005);
    }

    #[test]
    fn one_reg_size_of_u32_id_is_4() {
        assert_eq!(one_reg_size(0x6020_0000_0014_0000), 4);
    }

    #[test]
    fn one_reg_size_of_u2048_id_is_256() {
        assert_eq!(one_reg_size(0x6080_0000_0015_0000), 256);
    }

    #[test]
    fn psci_version_id_is_firmware_reg() {
        assert!(is_firmware_reg(0x6030_0000_0014_0000));
    }

    #[test]
    fn bitmap_id_is_firmware_reg() {
        assert!(is_firmware_reg(0x6030_0000_0016_0003));
    }

    #[test]
    fn sysreg_id_is_not_firmware_reg() {
        assert!(!is_firmware_reg(VBAR_EL1));
    }
}
