//! The SMCCC and PSCI functions KVM knows: one table, read by the engine's dispatch, by
//! PSCI_FEATURES and the bitmap gating, by armfw-kvm's forwarding and by the VMM's report.
//!
//! A guest's `w0` is a [`FunctionId`]: any 32-bit value, never an error.
//! [`FunctionId::known`] looks it up; a known id is a [`Function`], whose [`Info`] row says
//! everything the firmware needs about it. An id not in the table stays a raw value: KVM
//! answers it NOT_SUPPORTED (or, in the PSCI range, lets it through to PSCI, which does).
//!
//! A new function is one row of the table below. The row also defines the kernel-spelled
//! `u32` constant ([`super::psci`] and [`super::smccc`] re-export them), so code, kernel and
//! spec can be searched for the same name.
//!
//! What is deliberately not in the table: KVM's own PSCI 0.1 ids (`KVM_PSCI_FN_*` in
//! [`super::psci`]), which do not follow SMCCC and are raw values wherever they are used.
//!
//! Sources: Arm DEN0028 (SMCCC), DEN0022 F.b (PSCI 1.3), DEN0098 (TRNG), DEN0057A (PV time);
//! Linux `include/linux/arm-smccc.h`, `include/uapi/linux/psci.h`,
//! `arch/arm64/kvm/hypercalls.c` (`kvm_smccc_test_fw_bmap()`, `kvm_smccc_default_allowed()`)
//! and `arch/arm64/kvm/psci.c` (`kvm_psci_narrow_to_32bit()`, `kvm_psci_1_x_call()`).

use std::fmt;

use super::psci::PsciVersion;
use super::reg::FwReg;
use super::smccc::FunctionId;

/// The firmware service that answers a function: one engine module each, as in KVM's
/// `hypercalls.c`, `psci.c`, `trng.c`, `pvtime.c`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    /// Arm architecture calls (owner 0): SMCCC_VERSION, ARCH_FEATURES, the workarounds.
    Arch,
    /// PSCI (owner 4, numbers 0..=0x1f).
    Psci,
    /// TRNG (owner 4, numbers 0x50..=0x53).
    Trng,
    /// Paravirtualised time (owner 5).
    PvTime,
    /// KVM's vendor hypervisor service (owner 6).
    VendorHyp,
}

impl Service {
    /// The SMCCC owner number of the service's ids (bits 29:24).
    pub const fn owner_number(self) -> u8 {
        match self {
            Service::Arch => 0,
            Service::Psci | Service::Trng => 4,
            Service::PvTime => 5,
            Service::VendorHyp => 6,
        }
    }
}

/// What lets a call through to its service (Linux `kvm_smccc_call_handler()`): the bitmap
/// test, then the default list; anything else is NOT_SUPPORTED.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Gate {
    /// Never gated (`kvm_smccc_default_allowed()`).
    Default,
    /// Allowed while `bit` of the bitmap register `reg` is set (`kvm_smccc_test_fw_bmap()`).
    Bitmap {
        /// The bitmap register.
        reg: FwReg,
        /// The bit in it.
        bit: u8,
    },
    /// Never reaches a handler: KVM answers NOT_SUPPORTED (the workarounds are answered by
    /// the HVC fast path; SOC_ID and the DISCOVER_IMPL calls are not implemented in KVM).
    Never,
}

/// What PSCI_FEATURES answers for a function under PSCI 1.x (Linux `kvm_psci_1_x_call()`),
/// once the version has the function ([`Info::since`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Advertised {
    /// NOT_SUPPORTED: KVM does not implement it.
    No,
    /// SUCCESS.
    Yes,
    /// SUCCESS while KVM_CAP_ARM_SYSTEM_SUSPEND is enabled.
    IfSystemSuspend,
    /// The bitmap of supported off types (SYSTEM_OFF2: `PSCI_1_3_OFF_TYPE_HIBERNATE_OFF`).
    OffTypes,
}

/// One row of the table: what the firmware knows about a function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Info {
    /// The function.
    pub function: Function,
    /// Its id.
    pub id: FunctionId,
    /// Its name in reports: the spec name, with `64` (`_64` after a digit) for the SMC64
    /// form where both exist.
    pub name: &'static str,
    /// The kernel's constant (also the name of the `u32` constant in [`super::psci`] or
    /// [`super::smccc`]).
    pub kernel_name: &'static str,
    /// The service that answers it.
    pub service: Service,
    /// For PSCI functions, the PSCI version that introduced it: a vCPU on an older version
    /// gets NOT_SUPPORTED.
    pub since: Option<PsciVersion>,
    /// What lets a call through.
    pub gate: Gate,
    /// Whether KVM clears the upper halves of x1..x3 before it acts
    /// (`kvm_psci_narrow_to_32bit()`, for the SMC32 forms that take arguments).
    pub narrow: bool,
    /// PSCI_FEATURES' answer.
    pub advertised: Advertised,
}

impl Function {
    /// The function's row.
    pub const fn info(self) -> &'static Info {
        &TABLE[self as usize]
    }

    /// Its id.
    pub const fn id(self) -> FunctionId {
        self.info().id
    }

    /// Its id as a `u32`.
    pub const fn raw(self) -> u32 {
        self.info().id.0
    }

    /// Its report name ([`Info::name`]).
    pub const fn name(self) -> &'static str {
        self.info().name
    }

    /// The service that answers it.
    pub const fn service(self) -> Service {
        self.info().service
    }

    /// Whether it uses the SMC64 calling convention.
    pub const fn is_64(self) -> bool {
        self.info().id.is_64()
    }
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<Function> for FunctionId {
    fn from(f: Function) -> FunctionId {
        f.id()
    }
}

impl FunctionId {
    /// The known function with this id, if any.
    #[inline]
    pub const fn known(self) -> Option<Function> {
        lookup(self.0)
    }

    /// The gate of this id: the known function's, or for an unknown id KVM's default rule
    /// (`kvm_smccc_default_allowed()`): the whole PSCI range (owner 4, numbers 0..=0x1f,
    /// either convention) and KVM's PSCI 0.1 ids pass, anything else is never handled.
    pub const fn gate(self) -> Gate {
        match self.known() {
            Some(f) => f.info().gate,
            None if self.in_psci_range() => Gate::Default,
            // KVM's PSCI 0.1 ids (`KVM_PSCI_FN(0)..=KVM_PSCI_FN(3)`) do not follow SMCCC.
            None if self.0 >= super::psci::KVM_PSCI_FN_CPU_SUSPEND
                && self.0 <= super::psci::KVM_PSCI_FN_MIGRATE =>
            {
                Gate::Default
            }
            None => Gate::Never,
        }
    }

    /// The report name: the known function's, or the id in hex.
    pub fn name(self) -> String {
        match self.known() {
            Some(f) => f.name().to_string(),
            None => self.to_string(),
        }
    }
}

impl From<u32> for FunctionId {
    fn from(id: u32) -> FunctionId {
        FunctionId(id)
    }
}

impl From<FunctionId> for u32 {
    fn from(id: FunctionId) -> u32 {
        id.0
    }
}

/// The table: one row per function. Columns: variant, id, kernel constant, report name,
/// service, the PSCI version that introduced it, gate, 32-bit narrowing, PSCI_FEATURES.
macro_rules! functions {
    ($($module:ident {$(
        $(#[doc = $doc:literal])*
        $variant:ident = $id:literal, $kernel:ident, $name:literal, $service:ident,
        $since:expr, $gate:expr, $narrow:literal, $adv:ident;
    )*})*) => {
        /// A function in the table (see the [module documentation](self)).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Function {
            $($( $(#[doc = $doc])* $variant, )*)*
        }

        /// Every row, in [`Function`] order.
        pub const TABLE: &[Info] = &[$($(
            Info {
                function: Function::$variant,
                id: FunctionId($id),
                name: $name,
                kernel_name: stringify!($kernel),
                service: Service::$service,
                since: $since,
                gate: $gate,
                narrow: $narrow,
                advertised: Advertised::$adv,
            },
        )*)*];

        impl Function {
            /// Every function, in table order.
            pub const ALL: &[Function] = &[$($(Function::$variant),*),*];
        }

        #[inline]
        const fn lookup(id: u32) -> Option<Function> {
            match id {
                $($( $id => Some(Function::$variant), )*)*
                _ => None,
            }
        }

        $(
            /// Kernel-spelled `u32` id constants, re-exported by the module of the same name.
            pub(crate) mod $module {
                $(
                    #[doc = concat!("`", $name, "` (", stringify!($id), ").")]
                    pub const $kernel: u32 = $id;
                )*
            }
        )*
    };
}

use Gate::{Default as Ungated, Never};

const fn bit(reg: FwReg, bit: u8) -> Gate {
    Gate::Bitmap { reg, bit }
}

const V0_2: Option<PsciVersion> = Some(PsciVersion::V0_2);
const V1_0: Option<PsciVersion> = Some(PsciVersion::V1_0);
const V1_1: Option<PsciVersion> = Some(PsciVersion::V1_1);
const V1_3: Option<PsciVersion> = Some(PsciVersion::V1_3);
const TRNG: Gate = bit(FwReg::StdBmap, 0);
const PV_TIME: Gate = bit(FwReg::StdHypBmap, 0);
const KVM_FEATURES: Gate = bit(FwReg::VendorHypBmap, 0);
const KVM_PTP: Gate = bit(FwReg::VendorHypBmap, 1);

#[rustfmt::skip]
functions! {
    smccc {
    // Arm architecture calls (DEN0028 §7).
    /// SMCCC_VERSION (§7.2).
    SmcccVersion = 0x8000_0000, ARM_SMCCC_VERSION_FUNC_ID, "SMCCC_VERSION", Arch, None, Ungated, false, Yes;
    /// SMCCC_ARCH_FEATURES (§7.3).
    SmcccArchFeatures = 0x8000_0001, ARM_SMCCC_ARCH_FEATURES_FUNC_ID, "SMCCC_ARCH_FEATURES", Arch, None, Ungated, false, No;
    /// SMCCC_ARCH_SOC_ID (§7.4); KVM does not implement it.
    SmcccArchSocId = 0x8000_0002, ARM_SMCCC_ARCH_SOC_ID, "SMCCC_ARCH_SOC_ID", Arch, None, Never, false, No;
    /// SMCCC_ARCH_WORKAROUND_1 (Spectre-v2).
    SmcccArchWorkaround1 = 0x8000_8000, ARM_SMCCC_ARCH_WORKAROUND_1, "SMCCC_ARCH_WORKAROUND_1", Arch, None, Never, false, No;
    /// SMCCC_ARCH_WORKAROUND_2 (Spectre-v4, SSB).
    SmcccArchWorkaround2 = 0x8000_7fff, ARM_SMCCC_ARCH_WORKAROUND_2, "SMCCC_ARCH_WORKAROUND_2", Arch, None, Never, false, No;
    /// SMCCC_ARCH_WORKAROUND_3 (Spectre-BHB).
    SmcccArchWorkaround3 = 0x8000_3fff, ARM_SMCCC_ARCH_WORKAROUND_3, "SMCCC_ARCH_WORKAROUND_3", Arch, None, Never, false, No;

    // TRNG (DEN0098), gated by STD_BMAP bit 0.
    /// TRNG_VERSION.
    TrngVersion = 0x8400_0050, ARM_SMCCC_TRNG_VERSION, "TRNG_VERSION", Trng, None, TRNG, false, No;
    /// TRNG_FEATURES.
    TrngFeatures = 0x8400_0051, ARM_SMCCC_TRNG_FEATURES, "TRNG_FEATURES", Trng, None, TRNG, false, No;
    /// TRNG_GET_UUID.
    TrngGetUuid = 0x8400_0052, ARM_SMCCC_TRNG_GET_UUID, "TRNG_GET_UUID", Trng, None, TRNG, false, No;
    /// TRNG_RND (SMC32): up to 96 bits.
    TrngRnd32 = 0x8400_0053, ARM_SMCCC_TRNG_RND32, "TRNG_RND", Trng, None, TRNG, false, No;
    /// TRNG_RND (SMC64): up to 192 bits.
    TrngRnd64 = 0xc400_0053, ARM_SMCCC_TRNG_RND64, "TRNG_RND64", Trng, None, TRNG, false, No;

    // PV time (DEN0057A), gated by STD_HYP_BMAP bit 0.
    /// PV_TIME_FEATURES.
    PvTimeFeatures = 0xc500_0020, ARM_SMCCC_HV_PV_TIME_FEATURES, "PV_TIME_FEATURES", PvTime, None, PV_TIME, false, No;
    /// PV_TIME_ST: the IPA of the stolen-time structure.
    PvTimeSt = 0xc500_0021, ARM_SMCCC_HV_PV_TIME_ST, "PV_TIME_ST", PvTime, None, PV_TIME, false, No;

    // KVM's vendor hypervisor service, gated by VENDOR_HYP_BMAP.
    /// KVM_FEATURES: the function bitmap (bit 0).
    KvmFeatures = 0x8600_0000, ARM_SMCCC_VENDOR_HYP_KVM_FEATURES_FUNC_ID, "KVM_FEATURES", VendorHyp, None, KVM_FEATURES, false, No;
    /// PTP: host time and counter (bit 1).
    KvmPtp = 0x8600_0001, ARM_SMCCC_VENDOR_HYP_KVM_PTP_FUNC_ID, "KVM_PTP", VendorHyp, None, KVM_PTP, false, No;
    /// CALL_UID: KVM's vendor UID (bit 0).
    VendorHypCallUid = 0x8600_ff01, ARM_SMCCC_VENDOR_HYP_CALL_UID_FUNC_ID, "KVM_CALL_UID", VendorHyp, None, KVM_FEATURES, false, No;
    /// DISCOVER_IMPL_VER (Linux 6.15+): served by userspace only.
    KvmDiscoverImplVer = 0xc600_0040, ARM_SMCCC_VENDOR_HYP_KVM_DISCOVER_IMPL_VER_FUNC_ID, "KVM_DISCOVER_IMPL_VER", VendorHyp, None, Never, false, No;
    /// DISCOVER_IMPL_CPUS (Linux 6.15+): served by userspace only.
    KvmDiscoverImplCpus = 0xc600_0041, ARM_SMCCC_VENDOR_HYP_KVM_DISCOVER_IMPL_CPUS_FUNC_ID, "KVM_DISCOVER_IMPL_CPUS", VendorHyp, None, Never, false, No;
    }
    psci {
    // PSCI (DEN0022 F.b §5).
    /// PSCI_VERSION.
    PsciVersion = 0x8400_0000, PSCI_0_2_FN_PSCI_VERSION, "PSCI_VERSION", Psci, V0_2, Ungated, false, Yes;
    /// CPU_SUSPEND (SMC32).
    CpuSuspend32 = 0x8400_0001, PSCI_0_2_FN_CPU_SUSPEND, "CPU_SUSPEND", Psci, V0_2, Ungated, false, Yes;
    /// CPU_SUSPEND (SMC64).
    CpuSuspend64 = 0xc400_0001, PSCI_0_2_FN64_CPU_SUSPEND, "CPU_SUSPEND64", Psci, V0_2, Ungated, false, Yes;
    /// CPU_OFF.
    CpuOff = 0x8400_0002, PSCI_0_2_FN_CPU_OFF, "CPU_OFF", Psci, V0_2, Ungated, false, Yes;
    /// CPU_ON (SMC32).
    CpuOn32 = 0x8400_0003, PSCI_0_2_FN_CPU_ON, "CPU_ON", Psci, V0_2, Ungated, true, Yes;
    /// CPU_ON (SMC64).
    CpuOn64 = 0xc400_0003, PSCI_0_2_FN64_CPU_ON, "CPU_ON64", Psci, V0_2, Ungated, false, Yes;
    /// AFFINITY_INFO (SMC32).
    AffinityInfo32 = 0x8400_0004, PSCI_0_2_FN_AFFINITY_INFO, "AFFINITY_INFO", Psci, V0_2, Ungated, true, Yes;
    /// AFFINITY_INFO (SMC64).
    AffinityInfo64 = 0xc400_0004, PSCI_0_2_FN64_AFFINITY_INFO, "AFFINITY_INFO64", Psci, V0_2, Ungated, false, Yes;
    /// MIGRATE (SMC32); KVM does not implement it.
    Migrate32 = 0x8400_0005, PSCI_0_2_FN_MIGRATE, "MIGRATE", Psci, V0_2, Ungated, false, No;
    /// MIGRATE (SMC64).
    Migrate64 = 0xc400_0005, PSCI_0_2_FN64_MIGRATE, "MIGRATE64", Psci, V0_2, Ungated, false, No;
    /// MIGRATE_INFO_TYPE.
    MigrateInfoType = 0x8400_0006, PSCI_0_2_FN_MIGRATE_INFO_TYPE, "MIGRATE_INFO_TYPE", Psci, V0_2, Ungated, false, Yes;
    /// MIGRATE_INFO_UP_CPU (SMC32); KVM does not implement it.
    MigrateInfoUpCpu32 = 0x8400_0007, PSCI_0_2_FN_MIGRATE_INFO_UP_CPU, "MIGRATE_INFO_UP_CPU", Psci, V0_2, Ungated, false, No;
    /// MIGRATE_INFO_UP_CPU (SMC64).
    MigrateInfoUpCpu64 = 0xc400_0007, PSCI_0_2_FN64_MIGRATE_INFO_UP_CPU, "MIGRATE_INFO_UP_CPU64", Psci, V0_2, Ungated, false, No;
    /// SYSTEM_OFF.
    SystemOff = 0x8400_0008, PSCI_0_2_FN_SYSTEM_OFF, "SYSTEM_OFF", Psci, V0_2, Ungated, false, Yes;
    /// SYSTEM_RESET.
    SystemReset = 0x8400_0009, PSCI_0_2_FN_SYSTEM_RESET, "SYSTEM_RESET", Psci, V0_2, Ungated, false, Yes;
    /// PSCI_FEATURES (1.0).
    PsciFeatures = 0x8400_000a, PSCI_1_0_FN_PSCI_FEATURES, "PSCI_FEATURES", Psci, V1_0, Ungated, false, Yes;
    /// CPU_FREEZE (1.0); KVM does not implement it.
    CpuFreeze = 0x8400_000b, PSCI_1_0_FN_CPU_FREEZE, "CPU_FREEZE", Psci, V1_0, Ungated, false, No;
    /// CPU_DEFAULT_SUSPEND (1.0, SMC32); KVM does not implement it.
    CpuDefaultSuspend32 = 0x8400_000c, PSCI_1_0_FN_CPU_DEFAULT_SUSPEND, "CPU_DEFAULT_SUSPEND", Psci, V1_0, Ungated, false, No;
    /// CPU_DEFAULT_SUSPEND (1.0, SMC64).
    CpuDefaultSuspend64 = 0xc400_000c, PSCI_1_0_FN64_CPU_DEFAULT_SUSPEND, "CPU_DEFAULT_SUSPEND64", Psci, V1_0, Ungated, false, No;
    /// NODE_HW_STATE (1.0, SMC32); KVM does not implement it.
    NodeHwState32 = 0x8400_000d, PSCI_1_0_FN_NODE_HW_STATE, "NODE_HW_STATE", Psci, V1_0, Ungated, false, No;
    /// NODE_HW_STATE (1.0, SMC64).
    NodeHwState64 = 0xc400_000d, PSCI_1_0_FN64_NODE_HW_STATE, "NODE_HW_STATE64", Psci, V1_0, Ungated, false, No;
    /// SYSTEM_SUSPEND (1.0, SMC32).
    SystemSuspend32 = 0x8400_000e, PSCI_1_0_FN_SYSTEM_SUSPEND, "SYSTEM_SUSPEND", Psci, V1_0, Ungated, true, IfSystemSuspend;
    /// SYSTEM_SUSPEND (1.0, SMC64).
    SystemSuspend64 = 0xc400_000e, PSCI_1_0_FN64_SYSTEM_SUSPEND, "SYSTEM_SUSPEND64", Psci, V1_0, Ungated, false, IfSystemSuspend;
    /// PSCI_SET_SUSPEND_MODE (1.0); KVM does not implement it.
    PsciSetSuspendMode = 0x8400_000f, PSCI_1_0_FN_SET_SUSPEND_MODE, "PSCI_SET_SUSPEND_MODE", Psci, V1_0, Ungated, false, No;
    /// PSCI_STAT_RESIDENCY (1.0, SMC32); KVM does not implement it.
    PsciStatResidency32 = 0x8400_0010, PSCI_1_0_FN_STAT_RESIDENCY, "PSCI_STAT_RESIDENCY", Psci, V1_0, Ungated, false, No;
    /// PSCI_STAT_RESIDENCY (1.0, SMC64).
    PsciStatResidency64 = 0xc400_0010, PSCI_1_0_FN64_STAT_RESIDENCY, "PSCI_STAT_RESIDENCY64", Psci, V1_0, Ungated, false, No;
    /// PSCI_STAT_COUNT (1.0, SMC32); KVM does not implement it.
    PsciStatCount32 = 0x8400_0011, PSCI_1_0_FN_STAT_COUNT, "PSCI_STAT_COUNT", Psci, V1_0, Ungated, false, No;
    /// PSCI_STAT_COUNT (1.0, SMC64).
    PsciStatCount64 = 0xc400_0011, PSCI_1_0_FN64_STAT_COUNT, "PSCI_STAT_COUNT64", Psci, V1_0, Ungated, false, No;
    /// SYSTEM_RESET2 (1.1, SMC32).
    SystemReset2_32 = 0x8400_0012, PSCI_1_1_FN_SYSTEM_RESET2, "SYSTEM_RESET2", Psci, V1_1, Ungated, true, Yes;
    /// SYSTEM_RESET2 (1.1, SMC64).
    SystemReset2_64 = 0xc400_0012, PSCI_1_1_FN64_SYSTEM_RESET2, "SYSTEM_RESET2_64", Psci, V1_1, Ungated, false, Yes;
    /// MEM_PROTECT (1.1); KVM does not implement it.
    MemProtect = 0x8400_0013, PSCI_1_1_FN_MEM_PROTECT, "MEM_PROTECT", Psci, V1_1, Ungated, false, No;
    /// MEM_PROTECT_CHECK_RANGE (1.1, SMC32); KVM does not implement it.
    MemProtectCheckRange32 = 0x8400_0014, PSCI_1_1_FN_MEM_PROTECT_CHECK_RANGE, "MEM_PROTECT_CHECK_RANGE", Psci, V1_1, Ungated, false, No;
    /// MEM_PROTECT_CHECK_RANGE (1.1, SMC64).
    MemProtectCheckRange64 = 0xc400_0014, PSCI_1_1_FN64_MEM_PROTECT_CHECK_RANGE, "MEM_PROTECT_CHECK_RANGE64", Psci, V1_1, Ungated, false, No;
    /// SYSTEM_OFF2 (1.3, SMC32).
    SystemOff2_32 = 0x8400_0015, PSCI_1_3_FN_SYSTEM_OFF2, "SYSTEM_OFF2", Psci, V1_3, Ungated, true, OffTypes;
    /// SYSTEM_OFF2 (1.3, SMC64).
    SystemOff2_64 = 0xc400_0015, PSCI_1_3_FN64_SYSTEM_OFF2, "SYSTEM_OFF2_64", Psci, V1_3, Ungated, false, OffTypes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_rows_are_in_function_order_with_distinct_ids_and_names() {
        for (i, row) in TABLE.iter().enumerate() {
            assert_eq!(row.function as usize, i);
            assert_eq!(row.id.known(), Some(row.function), "{}", row.name);
            assert_eq!(
                row.id.owner_number(),
                row.service.owner_number(),
                "{}",
                row.name
            );
            assert!(row.id.is_fast(), "{}", row.name);
            for other in &TABLE[i + 1..] {
                assert_ne!(row.id, other.id);
                assert_ne!(row.name, other.name);
            }
        }
        assert_eq!(Function::ALL.len(), TABLE.len());
    }

    #[test]
    fn only_smc32_forms_with_arguments_narrow() {
        for row in TABLE.iter().filter(|r| r.narrow) {
            assert!(!row.id.is_64(), "{}", row.name);
            assert_eq!(row.service, Service::Psci);
        }
    }

    #[test]
    fn psci_rows_are_in_the_default_allowed_range() {
        for row in TABLE.iter().filter(|r| r.service == Service::Psci) {
            assert_eq!(row.gate, Gate::Default, "{}", row.name);
            assert!(
                row.id.number() <= 0x1f && row.since.is_some(),
                "{}",
                row.name
            );
        }
    }

    #[test]
    fn unknown_ids_stay_raw_and_take_kvm_default_gate() {
        assert_eq!(FunctionId::from(0x8400_001f).known(), None);
        assert_eq!(FunctionId::from(0x8400_001f).gate(), Gate::Default);
        assert_eq!(FunctionId::from(0xc400_0020).gate(), Gate::Never);
        assert_eq!(FunctionId::from(0x95c1_ba60).gate(), Gate::Default);
        assert_eq!(FunctionId::from(0x95c1_ba62).gate(), Gate::Never);
        assert_eq!(FunctionId::from(0x8200_0010).name(), "0x82000010");
        assert_eq!(Function::CpuOn64.id().name(), "CPU_ON64");
    }

    #[test]
    fn kernel_constants_are_the_table_ids() {
        assert_eq!(psci::PSCI_0_2_FN64_CPU_ON, 0xc400_0003);
        assert_eq!(smccc::ARM_SMCCC_TRNG_RND64, Function::TrngRnd64.raw());
        assert_eq!(
            Function::SystemOff2_64.info().kernel_name,
            "PSCI_1_3_FN64_SYSTEM_OFF2"
        );
    }
}
