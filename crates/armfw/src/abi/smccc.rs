//! SMC Calling Convention (Arm DEN0028): function ids, owners and the return codes of the
//! architecture, standard-hypervisor, TRNG and KVM vendor services.

use std::fmt;

/// An SMCCC function id: the 32-bit value a caller puts in `w0`.
///
/// KVM reads the function id as `w0` (the low 32 bits of `x0`); the upper half of `x0` is
/// ignored (Linux `smccc_get_function()` returns `u32`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FunctionId(pub u32);

/// The service that owns a function id (bits 29:24).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Owner {
    /// 0: Arm architecture calls (SMCCC_VERSION, ARCH_FEATURES, workarounds).
    Arch,
    /// 1: CPU service calls.
    Cpu,
    /// 2: SiP service calls.
    Sip,
    /// 3: OEM service calls.
    Oem,
    /// 4: standard secure service calls (PSCI, TRNG).
    Standard,
    /// 5: standard hypervisor service calls (PV time).
    StandardHyp,
    /// 6: vendor-specific hypervisor service calls (KVM's own).
    VendorHyp,
    /// 7..=47: reserved.
    Reserved(u8),
    /// 48..=49: trusted applications.
    TrustedApp(u8),
    /// 50..=63: trusted OS.
    TrustedOs(u8),
}

impl FunctionId {
    /// Bit 31: fast call (1) or yielding call (0).
    pub const FAST_CALL: u32 = 1 << 31;
    /// Bit 30: SMC64/HVC64 calling convention.
    pub const CONV_64: u32 = 1 << 30;

    /// The function id of a fast call from its fields.
    pub const fn fast(is_64: bool, owner: u8, number: u16) -> FunctionId {
        FunctionId(
            Self::FAST_CALL
                | if is_64 { Self::CONV_64 } else { 0 }
                | (((owner & 0x3f) as u32) << 24)
                | number as u32,
        )
    }

    /// The function id as KVM reads it from a guest's `x0`.
    pub const fn from_x0(x0: u64) -> FunctionId {
        FunctionId(super::reg_u32(x0))
    }

    /// Whether this is a fast call.
    pub const fn is_fast(self) -> bool {
        self.0 & Self::FAST_CALL != 0
    }

    /// Whether this id uses the 64-bit calling convention.
    pub const fn is_64(self) -> bool {
        self.0 & Self::CONV_64 != 0
    }

    /// The owning entity number (bits 29:24).
    pub const fn owner_number(self) -> u8 {
        ((self.0 >> 24) & 0x3f) as u8
    }

    /// The owning service.
    pub const fn owner(self) -> Owner {
        match self.owner_number() {
            0 => Owner::Arch,
            1 => Owner::Cpu,
            2 => Owner::Sip,
            3 => Owner::Oem,
            4 => Owner::Standard,
            5 => Owner::StandardHyp,
            6 => Owner::VendorHyp,
            n @ 48..=49 => Owner::TrustedApp(n),
            n @ 50..=63 => Owner::TrustedOs(n),
            n => Owner::Reserved(n),
        }
    }

    /// The function number (bits 15:0).
    pub const fn number(self) -> u16 {
        (self.0 & 0xffff) as u16
    }

    /// Whether the id is in the PSCI range: the standard secure service (owner 4),
    /// function numbers 0..=0x1f, either convention (Linux `kvm_smccc_default_allowed()`:
    /// "PSCI 0.2 and up is in the 0:0x1f range"), known to the table or not.
    pub const fn in_psci_range(self) -> bool {
        self.owner_number() == 4 && self.number() <= 0x1f
    }
}

impl fmt::Display for FunctionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}", self.0)
    }
}

// The function ids of the architecture, TRNG, PV time and KVM vendor services
// (`ARM_SMCCC_*`) are rows of the function table.
pub use super::function::smccc::*;

/// The SMCCC version KVM reports: 1.1.
pub const ARM_SMCCC_VERSION_1_1: u32 = 0x1_0001;

/// The TRNG version KVM reports: 1.0.
pub const ARM_SMCCC_TRNG_VERSION_1_0: u32 = 0x1_0000;
/// KVM's TRNG UUID `0d21e000-4384-11eb-8070-5244554e5a4c`, as the four little-endian words
/// TRNG_GET_UUID returns in x0..x3.
pub const ARM_SMCCC_TRNG_UUID_WORDS: [u32; 4] =
    [0x00e0_210d, 0xeb11_8443, 0x4452_7080, 0x4c5a_4e55];

/// KVM's vendor UID `28b46fb6-2ec5-11e9-a9ca-4b564d003a74` as the four little-endian words
/// CALL_UID returns in x0..x3.
pub const ARM_SMCCC_VENDOR_HYP_UID_KVM_WORDS: [u32; 4] =
    [0xb66f_b428, 0xe911_c52e, 0x564b_caa9, 0x743a_004d];

/// PTP counter selector: the virtual counter.
pub const KVM_PTP_VIRT_COUNTER: u32 = 0;
/// PTP counter selector: the physical counter.
pub const KVM_PTP_PHYS_COUNTER: u32 = 1;

/// SMCCC return: success.
pub const SMCCC_RET_SUCCESS: i64 = 0;
/// SMCCC return: not supported.
pub const SMCCC_RET_NOT_SUPPORTED: i64 = -1;
/// SMCCC return: not required.
pub const SMCCC_RET_NOT_REQUIRED: i64 = -2;
/// SMCCC return: invalid parameter.
pub const SMCCC_RET_INVALID_PARAMETER: i64 = -3;
/// ARCH_FEATURES answer for a workaround the CPU does not need.
pub const SMCCC_ARCH_WORKAROUND_RET_UNAFFECTED: i64 = 1;
/// TRNG return: success.
pub const TRNG_SUCCESS: i64 = 0;
/// TRNG return: invalid parameter (a bit count above the maximum).
pub const TRNG_INVALID_PARAMETER: i64 = -2;

/// A signed SMCCC return value as the guest sees it in a 64-bit register.
pub const fn ret(value: i64) -> u64 {
    #[expect(
        clippy::cast_sign_loss,
        reason = "two's-complement reinterpretation: KVM stores the signed code in a 64-bit register"
    )]
    let bits = value as u64;
    bits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_id_fields_decode_psci_cpu_on64() {
        let id = FunctionId(0xc400_0003);
        assert!(id.is_fast());
        assert!(id.is_64());
        assert_eq!(id.owner(), Owner::Standard);
        assert_eq!(id.number(), 3);
    }

    #[test]
    fn function_id_fast_builds_the_kernel_literals() {
        assert_eq!(
            FunctionId::fast(false, 0, 0),
            FunctionId(ARM_SMCCC_VERSION_FUNC_ID)
        );
        assert_eq!(
            FunctionId::fast(false, 0, 0x8000),
            FunctionId(ARM_SMCCC_ARCH_WORKAROUND_1)
        );
        assert_eq!(
            FunctionId::fast(true, 4, 0x53),
            FunctionId(ARM_SMCCC_TRNG_RND64)
        );
        assert_eq!(
            FunctionId::fast(true, 5, 0x20),
            FunctionId(ARM_SMCCC_HV_PV_TIME_FEATURES)
        );
        assert_eq!(
            FunctionId::fast(false, 6, 0xff01),
            FunctionId(ARM_SMCCC_VENDOR_HYP_CALL_UID_FUNC_ID)
        );
        assert_eq!(
            FunctionId::fast(true, 6, 0x40),
            FunctionId(ARM_SMCCC_VENDOR_HYP_KVM_DISCOVER_IMPL_VER_FUNC_ID)
        );
    }

    #[test]
    fn function_id_from_x0_ignores_the_upper_half() {
        assert_eq!(
            FunctionId::from_x0(0xffff_ffff_8400_0000),
            FunctionId(0x8400_0000)
        );
    }

    #[test]
    fn owner_ranges_follow_den0028() {
        assert_eq!(FunctionId(0xb000_0000).owner(), Owner::TrustedApp(48));
        assert_eq!(FunctionId(0xbf00_0000).owner(), Owner::TrustedOs(63));
        assert_eq!(FunctionId(0x8700_0000).owner(), Owner::Reserved(7));
    }

    #[test]
    fn uuid_words_are_the_little_endian_words_of_the_uuids() {
        // 0d21e000-4384-11eb-8070-524455 4e5a4c in byte order, read as four LE u32 words.
        let trng: [u8; 16] = [
            0x0d, 0x21, 0xe0, 0x00, 0x43, 0x84, 0x11, 0xeb, 0x80, 0x70, 0x52, 0x44, 0x55, 0x4e,
            0x5a, 0x4c,
        ];
        // uuid_t stores the UUID big-endian; the kernel reads it as __le32 words.
        let words: Vec<u32> = trng
            .chunks(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(words, ARM_SMCCC_TRNG_UUID_WORDS);
        let kvm: [u8; 16] = [
            0x28, 0xb4, 0x6f, 0xb6, 0x2e, 0xc5, 0x11, 0xe9, 0xa9, 0xca, 0x4b, 0x56, 0x4d, 0x00,
            0x3a, 0x74,
        ];
        let words: Vec<u32> = kvm
            .chunks(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(words, ARM_SMCCC_VENDOR_HYP_UID_KVM_WORDS);
    }

    #[test]
    fn ret_sign_extends() {
        assert_eq!(ret(SMCCC_RET_NOT_SUPPORTED), 0xffff_ffff_ffff_ffff);
        assert_eq!(ret(TRNG_INVALID_PARAMETER), 0xffff_ffff_ffff_fffe);
    }
}
