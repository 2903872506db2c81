//! KVM ONE_REG ids and the eight firmware pseudo-registers.
//!
//! An arm64 ONE_REG id is `KVM_REG_ARM64 | size | class | index` (Linux
//! `Documentation/virt/kvm/api.rst`, KVM_SET_ONE_REG): arch in bits 63:56, the size code in
//! bits 55:52 (the value buffer holds `1 << code` bytes), the class ("coprocessor") in bits 27:16
//! and the index in bits 15:0. Firmware registers are class 0x0014 (`KVM_REG_ARM_FW`) and
//! 0x0016 (`KVM_REG_ARM_FW_FEAT_BMAP`), all 64 bits wide.

use std::fmt;

/// `KVM_REG_ARM64`: the arm64 architecture field.
pub const KVM_REG_ARM64: u64 = 0x6000_0000_0000_0000;
/// `KVM_REG_SIZE_MASK`: the size field (bits 55:52).
pub const KVM_REG_SIZE_MASK: u64 = 0x00f0_0000_0000_0000;
/// `KVM_REG_SIZE_SHIFT`.
pub const KVM_REG_SIZE_SHIFT: u32 = 52;
/// `KVM_REG_SIZE_U64`: size code 3, eight bytes.
pub const KVM_REG_SIZE_U64: u64 = 0x0030_0000_0000_0000;
/// `KVM_REG_ARM_COPROC_MASK`: the class field (bits 27:16).
pub const KVM_REG_ARM_COPROC_MASK: u64 = 0x0fff_0000;
/// `KVM_REG_ARM_COPROC_SHIFT`.
pub const KVM_REG_ARM_COPROC_SHIFT: u32 = 16;
/// Class of the core registers (x0..x30, sp, pc, pstate, ...).
pub const KVM_REG_ARM_CORE: u64 = 0x0010 << KVM_REG_ARM_COPROC_SHIFT;
/// Class of the "KVM as firmware" registers.
pub const KVM_REG_ARM_FW: u64 = 0x0014 << KVM_REG_ARM_COPROC_SHIFT;
/// Class of the firmware feature bitmap registers.
pub const KVM_REG_ARM_FW_FEAT_BMAP: u64 = 0x0016 << KVM_REG_ARM_COPROC_SHIFT;

/// A ONE_REG id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OneRegId(pub u64);

impl OneRegId {
    /// The size code (bits 55:52).
    pub const fn size_code(self) -> u32 {
        ((self.0 & KVM_REG_SIZE_MASK) >> KVM_REG_SIZE_SHIFT) as u32
    }

    /// The size of the value buffer in bytes: `1 << size_code` (1 to 32768).
    pub const fn size_bytes(self) -> usize {
        1usize << self.size_code()
    }

    /// The class field value (bits 27:16), e.g. 0x14 for firmware registers.
    pub const fn class(self) -> u16 {
        ((self.0 & KVM_REG_ARM_COPROC_MASK) >> KVM_REG_ARM_COPROC_SHIFT) as u16
    }

    /// The index (bits 15:0).
    pub const fn index(self) -> u16 {
        (self.0 & 0xffff) as u16
    }

    /// Whether the id, ignoring its size field, names the arm64 architecture in its upper 32
    /// bits, the first check of Linux `kvm_arm_get_reg()`/`kvm_arm_set_reg()` (EINVAL otherwise).
    pub const fn is_arm64(self) -> bool {
        (self.0 & !KVM_REG_SIZE_MASK) >> 32 == KVM_REG_ARM64 >> 32
    }

    /// Whether the id is in one of the two firmware classes (0x14 or 0x16).
    pub const fn is_firmware_class(self) -> bool {
        let class = self.0 & KVM_REG_ARM_COPROC_MASK;
        class == KVM_REG_ARM_FW || class == KVM_REG_ARM_FW_FEAT_BMAP
    }
}

impl fmt::Display for OneRegId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#018x}", self.0)
    }
}

const fn fw_reg(index: u64) -> u64 {
    KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_FW | index
}

const fn fw_feat_bmap_reg(index: u64) -> u64 {
    KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_FW_FEAT_BMAP | index
}

/// The firmware pseudo-registers KVM has, in the order KVM_GET_REG_LIST reports them
/// (Linux `kvm_arm_fw_reg_ids[]` in `arch/arm64/kvm/hypercalls.c`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FwReg {
    /// `KVM_REG_ARM_PSCI_VERSION` (Linux 4.17, backported to 4.16): the VM's PSCI version.
    PsciVersion,
    /// `KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_1` (5.2): the host's Spectre-v2 level.
    SmcccArchWorkaround1,
    /// `KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2` (5.2): the host's Spectre-v4 (SSB) level.
    SmcccArchWorkaround2,
    /// `KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_3` (5.17): the host's Spectre-BHB level.
    SmcccArchWorkaround3,
    /// `KVM_REG_ARM_STD_BMAP` (5.19): standard services (bit 0 TRNG 1.0).
    StdBmap,
    /// `KVM_REG_ARM_STD_HYP_BMAP` (5.19): standard hypervisor services (bit 0 PV time).
    StdHypBmap,
    /// `KVM_REG_ARM_VENDOR_HYP_BMAP` (5.19): KVM vendor services (bit 0 FEATURES/UID, bit 1 PTP).
    VendorHypBmap,
    /// `KVM_REG_ARM_VENDOR_HYP_BMAP_2` (6.15): vendor services 64..127 (bit 0
    /// DISCOVER_IMPL_VER, bit 1 DISCOVER_IMPL_CPUS), advertised only.
    VendorHypBmap2,
}

impl FwReg {
    /// Every firmware register, in KVM's register-list order.
    pub const ALL: [FwReg; 8] = [
        FwReg::PsciVersion,
        FwReg::SmcccArchWorkaround1,
        FwReg::SmcccArchWorkaround2,
        FwReg::SmcccArchWorkaround3,
        FwReg::StdBmap,
        FwReg::StdHypBmap,
        FwReg::VendorHypBmap,
        FwReg::VendorHypBmap2,
    ];

    /// The ONE_REG id.
    pub const fn id(self) -> u64 {
        match self {
            FwReg::PsciVersion => fw_reg(0),
            FwReg::SmcccArchWorkaround1 => fw_reg(1),
            FwReg::SmcccArchWorkaround2 => fw_reg(2),
            FwReg::SmcccArchWorkaround3 => fw_reg(3),
            FwReg::StdBmap => fw_feat_bmap_reg(0),
            FwReg::StdHypBmap => fw_feat_bmap_reg(1),
            FwReg::VendorHypBmap => fw_feat_bmap_reg(2),
            FwReg::VendorHypBmap2 => fw_feat_bmap_reg(3),
        }
    }

    /// The register's position in [`FwReg::ALL`] (KVM's list order).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The register with this exact id.
    pub fn from_id(id: u64) -> Option<FwReg> {
        Self::ALL.into_iter().find(|r| r.id() == id)
    }

    /// The name without the `KVM_REG_ARM_` prefix, as scenarios and profiles spell it.
    pub const fn name(self) -> &'static str {
        match self {
            FwReg::PsciVersion => "PSCI_VERSION",
            FwReg::SmcccArchWorkaround1 => "SMCCC_ARCH_WORKAROUND_1",
            FwReg::SmcccArchWorkaround2 => "SMCCC_ARCH_WORKAROUND_2",
            FwReg::SmcccArchWorkaround3 => "SMCCC_ARCH_WORKAROUND_3",
            FwReg::StdBmap => "STD_BMAP",
            FwReg::StdHypBmap => "STD_HYP_BMAP",
            FwReg::VendorHypBmap => "VENDOR_HYP_BMAP",
            FwReg::VendorHypBmap2 => "VENDOR_HYP_BMAP_2",
        }
    }

    /// The register with this name (exact, case-sensitive, without the `KVM_REG_ARM_` prefix).
    pub fn from_name(name: &str) -> Option<FwReg> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    /// Whether this is one of the three WORKAROUND level registers.
    pub const fn is_workaround(self) -> bool {
        matches!(
            self,
            FwReg::SmcccArchWorkaround1 | FwReg::SmcccArchWorkaround2 | FwReg::SmcccArchWorkaround3
        )
    }

    /// Whether this is one of the four feature bitmap registers.
    pub const fn is_bitmap(self) -> bool {
        matches!(
            self,
            FwReg::StdBmap | FwReg::StdHypBmap | FwReg::VendorHypBmap | FwReg::VendorHypBmap2
        )
    }

    /// The bitmap's index 0..=3 among the bitmap registers, if it is one.
    pub const fn bitmap_index(self) -> Option<usize> {
        match self {
            FwReg::StdBmap => Some(0),
            FwReg::StdHypBmap => Some(1),
            FwReg::VendorHypBmap => Some(2),
            FwReg::VendorHypBmap2 => Some(3),
            _ => None,
        }
    }
}

impl fmt::Display for FwReg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `KVM_REG_FEATURE_LEVEL_MASK`: the level field of the WORKAROUND registers (bits 3:0).
pub const KVM_REG_FEATURE_LEVEL_MASK: u64 = 0xf;
/// WORKAROUND_1/3 level: no firmware mitigation offered.
pub const KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_1_NOT_AVAIL: u64 = 0;
/// WORKAROUND_1/3 level: the workaround call exists and is needed.
pub const KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_1_AVAIL: u64 = 1;
/// WORKAROUND_1/3 level: the call exists but is not needed.
pub const KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_1_NOT_REQUIRED: u64 = 2;
/// WORKAROUND_2 level: not available.
pub const KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_NOT_AVAIL: u64 = 0;
/// WORKAROUND_2 level: unknown (deprecated, still accepted).
pub const KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_UNKNOWN: u64 = 1;
/// WORKAROUND_2 level: available (deprecated, still accepted).
pub const KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_AVAIL: u64 = 2;
/// WORKAROUND_2 level: not required.
pub const KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_NOT_REQUIRED: u64 = 3;
/// WORKAROUND_2 ENABLED bit (meaningful only in 5.2–5.9; accepted only with AVAIL).
pub const KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_ENABLED: u64 = 1 << 4;

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden ids from Linux `Documentation/virt/kvm/api.rst` and
    /// `tools/testing/selftests/kvm/arm64/get-reg-list.c` (FW_REG(0..3), FW_FEAT_BMAP_REG(0..3)).
    #[test]
    fn firmware_register_ids_match_the_kernel_literals() {
        assert_eq!(FwReg::PsciVersion.id(), 0x6030_0000_0014_0000);
        assert_eq!(FwReg::SmcccArchWorkaround1.id(), 0x6030_0000_0014_0001);
        assert_eq!(FwReg::SmcccArchWorkaround2.id(), 0x6030_0000_0014_0002);
        assert_eq!(FwReg::SmcccArchWorkaround3.id(), 0x6030_0000_0014_0003);
        assert_eq!(FwReg::StdBmap.id(), 0x6030_0000_0016_0000);
        assert_eq!(FwReg::StdHypBmap.id(), 0x6030_0000_0016_0001);
        assert_eq!(FwReg::VendorHypBmap.id(), 0x6030_0000_0016_0002);
        assert_eq!(FwReg::VendorHypBmap2.id(), 0x6030_0000_0016_0003);
    }

    #[test]
    fn one_reg_id_fields_decode_the_core_pc() {
        // api.rst: 0x6030 0000 0010 0040 PC
        let pc = OneRegId(0x6030_0000_0010_0040);
        assert_eq!(pc.class(), 0x10);
        assert_eq!(pc.index(), 0x40);
        assert_eq!(pc.size_bytes(), 8);
        assert!(pc.is_arm64());
        assert!(!pc.is_firmware_class());
    }

    #[test]
    fn one_reg_id_of_another_arch_is_not_arm64() {
        assert!(!OneRegId(0x4030_0000_0014_0000).is_arm64());
        assert!(!OneRegId(0x6030_0001_0014_0000).is_arm64());
        assert!(OneRegId(0x6020_0000_0014_0000).is_arm64());
    }

    #[test]
    fn one_reg_size_covers_every_code() {
        assert_eq!(OneRegId(0x6000_0000_0014_0000).size_bytes(), 1);
        assert_eq!(OneRegId(0x6040_0000_0014_0000).size_bytes(), 16);
        assert_eq!(OneRegId(0x60f0_0000_0014_0000).size_bytes(), 32768);
    }

    #[test]
    fn fw_reg_names_round_trip() {
        for reg in FwReg::ALL {
            assert_eq!(FwReg::from_name(reg.name()), Some(reg));
            assert_eq!(FwReg::from_id(reg.id()), Some(reg));
        }
        assert_eq!(FwReg::from_name("psci_version"), None);
    }
}
