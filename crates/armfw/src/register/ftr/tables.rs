//! The field tables themselves: one array per register, as the kernel's `ftr_*[]` arrays in
//! `arch/arm64/kernel/cpufeature.c`, and [`FTR_REGS`], as its `arm64_ftr_regs[]`.

use super::{FtrField, FtrReg, FtrType};

#[allow(clippy::too_many_arguments)]
const fn fb(
    name: &'static str,
    signed: bool,
    visible: bool,
    strict: bool,
    kind: FtrType,
    shift: u8,
    width: u8,
    safe: i64,
) -> FtrField {
    FtrField {
        name,
        shift,
        width,
        signed,
        kind,
        safe,
        visible,
        strict,
        mask: FtrField::mask_of(shift, width),
    }
}

/// `ARM64_FTR_BITS(visible, strict, FTR_LOWER_SAFE, shift, 4, 0)`: the common row.
const fn lo(name: &'static str, visible: bool, strict: bool, shift: u8) -> FtrField {
    fb(
        name,
        UNSIGNED,
        visible,
        strict,
        FtrType::LowerSafe,
        shift,
        4,
        0,
    )
}

/// `ARM64_FTR_BITS(FTR_HIDDEN, FTR_STRICT, FTR_LOWER_SAFE, shift, 4, 0)`.
const fn hs(name: &'static str, shift: u8) -> FtrField {
    lo(name, HIDDEN, STRICT, shift)
}

const SIGNED: bool = true;
const UNSIGNED: bool = false;
const VISIBLE: bool = true;
const HIDDEN: bool = false;
const STRICT: bool = true;
const NONSTRICT: bool = false;

use FtrType::{Exact, HigherOrZeroSafe, HigherSafe, LowerSafe};

static ID_PFR0: [FtrField; 6] = [
    hs("DIT", 24),
    lo("CSV2", HIDDEN, NONSTRICT, 16),
    hs("State3", 12),
    hs("State2", 8),
    hs("State1", 4),
    hs("State0", 0),
];

static ID_PFR1: [FtrField; 8] = [
    hs("GIC", 28),
    hs("Virt_frac", 24),
    hs("Sec_frac", 20),
    hs("GenTimer", 16),
    hs("Virtualization", 12),
    hs("MProgMod", 8),
    hs("Security", 4),
    hs("ProgMod", 0),
];

static ID_DFR0: [FtrField; 7] = [
    // [31:28] TraceFilt has no row.
    fb("PerfMon", SIGNED, HIDDEN, NONSTRICT, Exact, 24, 4, 0),
    hs("MProfDbg", 20),
    hs("MMapTrc", 16),
    hs("CopTrc", 12),
    hs("MMapDbg", 8),
    hs("CopSDbg", 4),
    hs("CopDbg", 0),
];

static ID_MMFR0: [FtrField; 8] = [
    fb("InnerShr", SIGNED, HIDDEN, STRICT, LowerSafe, 28, 4, 0xf),
    hs("FCSE", 24),
    lo("AuxReg", HIDDEN, NONSTRICT, 20),
    hs("TCM", 16),
    hs("ShareLvl", 12),
    fb("OuterShr", SIGNED, HIDDEN, STRICT, LowerSafe, 8, 4, 0xf),
    hs("PMSA", 4),
    hs("VMSA", 0),
];

/// `ftr_generic_32bits` with ID_MMFR1_EL1's field names.
static ID_MMFR1: [FtrField; 8] = [
    hs("BPred", 28),
    hs("L1TstCln", 24),
    hs("L1Uni", 20),
    hs("L1Hvd", 16),
    hs("L1UniSW", 12),
    hs("L1HvdSW", 8),
    hs("L1UniVA", 4),
    hs("L1HvdVA", 0),
];

/// `ftr_generic_32bits` with ID_MMFR2_EL1's field names.
static ID_MMFR2: [FtrField; 8] = [
    hs("HWAccFlg", 28),
    hs("WFIStall", 24),
    hs("MemBarr", 20),
    hs("UniTLB", 16),
    hs("HvdTLB", 12),
    hs("L1HvdRng", 8),
    hs("L1HvdBG", 4),
    hs("L1HvdFG", 0),
];

/// `ftr_generic_32bits` with ID_MMFR3_EL1's field names.
static ID_MMFR3: [FtrField; 8] = [
    hs("Supersec", 28),
    hs("CMemSz", 24),
    hs("CohWalk", 20),
    hs("PAN", 16),
    hs("MaintBcst", 12),
    hs("BPMaint", 8),
    hs("CMaintSW", 4),
    hs("CMaintVA", 0),
];

static ID_ISAR0: [FtrField; 7] = [
    hs("Divide", 24),
    hs("Debug", 20),
    hs("Coproc", 16),
    hs("CmpBranch", 12),
    hs("BitField", 8),
    hs("BitCount", 4),
    hs("Swap", 0),
];

/// `ftr_generic_32bits` with ID_ISAR1_EL1's field names.
static ID_ISAR1: [FtrField; 8] = [
    hs("Jazelle", 28),
    hs("Interwork", 24),
    hs("Immediate", 20),
    hs("IfThen", 16),
    hs("Extend", 12),
    hs("Except_AR", 8),
    hs("Except", 4),
    hs("Endian", 0),
];

/// `ftr_generic_32bits` with ID_ISAR2_EL1's field names.
static ID_ISAR2: [FtrField; 8] = [
    hs("Reversal", 28),
    hs("PSR_AR", 24),
    hs("MultU", 20),
    hs("MultS", 16),
    hs("Mult", 12),
    hs("MultiAccessInt", 8),
    hs("MemHint", 4),
    hs("LoadStore", 0),
];

/// `ftr_generic_32bits` with ID_ISAR3_EL1's field names.
static ID_ISAR3: [FtrField; 8] = [
    hs("T32EE", 28),
    hs("TrueNOP", 24),
    hs("T32Copy", 20),
    hs("TabBranch", 16),
    hs("SynchPrim", 12),
    hs("SVC", 8),
    hs("SIMD", 4),
    hs("Saturate", 0),
];

static ID_ISAR4: [FtrField; 8] = [
    hs("SWP_frac", 28),
    hs("PSR_M", 24),
    hs("SynchPrim_frac", 20),
    hs("Barrier", 16),
    hs("SMC", 12),
    hs("Writeback", 8),
    hs("WithShifts", 4),
    hs("Unpriv", 0),
];

static ID_ISAR5: [FtrField; 6] = [
    hs("RDM", 24),
    lo("CRC32", VISIBLE, STRICT, 16),
    lo("SHA2", VISIBLE, STRICT, 12),
    lo("SHA1", VISIBLE, STRICT, 8),
    lo("AES", VISIBLE, STRICT, 4),
    hs("SEVL", 0),
];

static ID_MMFR4: [FtrField; 8] = [
    hs("EVT", 28),
    hs("CCIDX", 24),
    hs("LSM", 20),
    hs("HPDS", 16),
    hs("CnP", 12),
    hs("XNX", 8),
    hs("AC2", 4),
    fb("SpecSEI", UNSIGNED, HIDDEN, STRICT, HigherSafe, 0, 4, 0),
];

static ID_ISAR6: [FtrField; 7] = [
    lo("I8MM", VISIBLE, STRICT, 24),
    lo("BF16", VISIBLE, STRICT, 20),
    hs("SPECRES", 16),
    lo("SB", VISIBLE, STRICT, 12),
    lo("FHM", VISIBLE, STRICT, 8),
    lo("DP", VISIBLE, STRICT, 4),
    hs("JSCVT", 0),
];

static MVFR0: [FtrField; 8] = [
    hs("FPRound", 28),
    hs("FPShVec", 24),
    hs("FPSqrt", 20),
    hs("FPDivide", 16),
    hs("FPTrap", 12),
    lo("FPDP", VISIBLE, STRICT, 8),
    hs("FPSP", 4),
    hs("SIMDReg", 0),
];

static MVFR1: [FtrField; 8] = [
    lo("SIMDFMAC", VISIBLE, STRICT, 28),
    lo("FPHP", VISIBLE, STRICT, 24),
    lo("SIMDHP", VISIBLE, STRICT, 20),
    lo("SIMDSP", VISIBLE, STRICT, 16),
    lo("SIMDInt", VISIBLE, STRICT, 12),
    lo("SIMDLS", VISIBLE, STRICT, 8),
    hs("FPDNaN", 4),
    hs("FPFtZ", 0),
];

static MVFR2: [FtrField; 2] = [hs("FPMisc", 4), hs("SIMDMisc", 0)];

static ID_PFR2: [FtrField; 2] = [
    lo("SSBS", VISIBLE, NONSTRICT, 4),
    lo("CSV3", HIDDEN, NONSTRICT, 0),
];

static ID_DFR1: [FtrField; 1] = [fb("MTPMU", SIGNED, HIDDEN, STRICT, LowerSafe, 0, 4, 0)];

static ID_MMFR5: [FtrField; 1] = [hs("ETS", 0)];

static ID_AA64PFR0: [FtrField; 15] = [
    lo("CSV3", HIDDEN, NONSTRICT, 60),
    lo("CSV2", HIDDEN, NONSTRICT, 56),
    lo("DIT", VISIBLE, STRICT, 48),
    lo("AMU", HIDDEN, NONSTRICT, 44),
    hs("MPAM", 40),
    lo("SEL2", HIDDEN, NONSTRICT, 36),
    lo("SVE", VISIBLE, STRICT, 32),
    hs("RAS", 28),
    hs("GIC", 24),
    // Safe value ID_AA64PFR0_EL1_AdvSIMD_NI / FP_NI = 0xf, stored as 15 (not -1).
    fb("AdvSIMD", SIGNED, VISIBLE, STRICT, LowerSafe, 20, 4, 0xf),
    fb("FP", SIGNED, VISIBLE, STRICT, LowerSafe, 16, 4, 0xf),
    lo("EL3", HIDDEN, NONSTRICT, 12),
    lo("EL2", HIDDEN, NONSTRICT, 8),
    // Safe value ID_AA64PFR0_EL1_EL1_IMP / EL0_IMP = 1 (ELx_64BIT_ONLY in older trees).
    fb("EL1", UNSIGNED, HIDDEN, NONSTRICT, LowerSafe, 4, 4, 1),
    fb("EL0", UNSIGNED, HIDDEN, NONSTRICT, LowerSafe, 0, 4, 1),
];

static ID_AA64PFR1: [FtrField; 9] = [
    hs("DF2", 56),
    lo("GCS", VISIBLE, STRICT, 44),
    fb("MTE_frac", SIGNED, HIDDEN, STRICT, LowerSafe, 40, 4, 0),
    lo("SME", VISIBLE, STRICT, 24),
    hs("MPAM_frac", 16),
    hs("RAS_frac", 12),
    // Safe value ID_AA64PFR1_EL1_MTE_NI = 0.
    lo("MTE", VISIBLE, STRICT, 8),
    // Safe value ID_AA64PFR1_EL1_SSBS_NI = 0.
    lo("SSBS", VISIBLE, NONSTRICT, 4),
    lo("BT", VISIBLE, STRICT, 0),
];

static ID_AA64PFR2: [FtrField; 3] = [
    lo("FPMR", VISIBLE, STRICT, 32),
    lo("MTEFAR", VISIBLE, NONSTRICT, 8),
    lo("MTESTOREONLY", VISIBLE, NONSTRICT, 4),
];

static ID_AA64ZFR0: [FtrField; 12] = [
    lo("F64MM", VISIBLE, STRICT, 56),
    lo("F32MM", VISIBLE, STRICT, 52),
    lo("F16MM", VISIBLE, STRICT, 48),
    lo("I8MM", VISIBLE, STRICT, 44),
    lo("SM4", VISIBLE, STRICT, 40),
    lo("SHA3", VISIBLE, STRICT, 32),
    lo("B16B16", VISIBLE, STRICT, 24),
    lo("BF16", VISIBLE, STRICT, 20),
    lo("BitPerm", VISIBLE, STRICT, 16),
    lo("EltPerm", VISIBLE, STRICT, 12),
    lo("AES", VISIBLE, STRICT, 4),
    lo("SVEver", VISIBLE, STRICT, 0),
];

/// `ARM64_FTR_BITS(FTR_VISIBLE_IF_IS_ENABLED(CONFIG_ARM64_SME), FTR_STRICT, FTR_EXACT, …, 0)`.
const fn sme(name: &'static str, shift: u8, width: u8) -> FtrField {
    fb(name, UNSIGNED, VISIBLE, STRICT, Exact, shift, width, 0)
}

static ID_AA64SMFR0: [FtrField; 23] = [
    sme("FA64", 63, 1),
    sme("LUTv2", 60, 1),
    sme("SMEver", 56, 4),
    sme("I16I64", 52, 4),
    sme("F64F64", 48, 1),
    sme("I16I32", 44, 4),
    sme("B16B16", 43, 1),
    sme("F16F16", 42, 1),
    sme("F8F16", 41, 1),
    sme("F8F32", 40, 1),
    sme("I8I32", 36, 4),
    sme("F16F32", 35, 1),
    sme("B16F32", 34, 1),
    sme("BI32I32", 33, 1),
    sme("F32F32", 32, 1),
    sme("SF8FMA", 30, 1),
    sme("SF8DP4", 29, 1),
    sme("SF8DP2", 28, 1),
    sme("SBitPerm", 25, 1),
    sme("AES", 24, 1),
    sme("SFEXPA", 23, 1),
    sme("STMOP", 16, 1),
    sme("SMOP4", 0, 1),
];

static ID_AA64FPFR0: [FtrField; 8] = [
    sme("F8CVT", 31, 1),
    sme("F8FMA", 30, 1),
    sme("F8DP4", 29, 1),
    sme("F8DP2", 28, 1),
    sme("F8MM8", 27, 1),
    sme("F8MM4", 26, 1),
    sme("F8E4M3", 1, 1),
    sme("F8E5M2", 0, 1),
];

static ID_AA64DFR0: [FtrField; 7] = [
    fb("DoubleLock", SIGNED, HIDDEN, STRICT, LowerSafe, 36, 4, 0),
    lo("PMSVer", HIDDEN, NONSTRICT, 32),
    hs("CTX_CMPs", 28),
    hs("WRPs", 20),
    hs("BRPs", 12),
    // "We can instantiate multiple PMU instances with different levels of support."
    fb("PMUVer", SIGNED, HIDDEN, NONSTRICT, Exact, 8, 4, 0),
    fb("DebugVer", UNSIGNED, HIDDEN, STRICT, Exact, 0, 4, 0x6),
];

static ID_AA64ISAR0: [FtrField; 14] = [
    lo("RNDR", VISIBLE, STRICT, 60),
    hs("TLB", 56),
    lo("TS", VISIBLE, STRICT, 52),
    lo("FHM", VISIBLE, STRICT, 48),
    lo("DP", VISIBLE, STRICT, 44),
    lo("SM4", VISIBLE, STRICT, 40),
    lo("SM3", VISIBLE, STRICT, 36),
    lo("SHA3", VISIBLE, STRICT, 32),
    lo("RDM", VISIBLE, STRICT, 28),
    lo("ATOMIC", VISIBLE, STRICT, 20),
    lo("CRC32", VISIBLE, STRICT, 16),
    lo("SHA2", VISIBLE, STRICT, 12),
    lo("SHA1", VISIBLE, STRICT, 8),
    lo("AES", VISIBLE, STRICT, 4),
];

static ID_AA64ISAR1: [FtrField; 15] = [
    hs("XS", 56),
    lo("I8MM", VISIBLE, STRICT, 52),
    lo("DGH", VISIBLE, STRICT, 48),
    lo("BF16", VISIBLE, STRICT, 44),
    hs("SPECRES", 40),
    lo("SB", VISIBLE, STRICT, 36),
    lo("FRINTTS", VISIBLE, STRICT, 32),
    lo("GPI", VISIBLE, STRICT, 28),
    lo("GPA", VISIBLE, STRICT, 24),
    lo("LRCPC", VISIBLE, STRICT, 20),
    lo("FCMA", VISIBLE, STRICT, 16),
    lo("JSCVT", VISIBLE, STRICT, 12),
    fb("API", UNSIGNED, VISIBLE, STRICT, Exact, 8, 4, 0),
    fb("APA", UNSIGNED, VISIBLE, STRICT, Exact, 4, 4, 0),
    lo("DPB", VISIBLE, STRICT, 0),
];

static ID_AA64ISAR2: [FtrField; 10] = [
    lo("LUT", VISIBLE, NONSTRICT, 56),
    lo("CSSC", VISIBLE, NONSTRICT, 52),
    lo("RPRFM", VISIBLE, NONSTRICT, 48),
    hs("CLRBHB", 28),
    lo("BC", VISIBLE, STRICT, 20),
    lo("MOPS", VISIBLE, STRICT, 16),
    fb("APA3", UNSIGNED, VISIBLE, STRICT, Exact, 12, 4, 0),
    lo("GPA3", VISIBLE, STRICT, 8),
    lo("RPRES", VISIBLE, NONSTRICT, 4),
    lo("WFxT", VISIBLE, NONSTRICT, 0),
];

static ID_AA64ISAR3: [FtrField; 3] = [
    lo("FPRCVT", VISIBLE, NONSTRICT, 28),
    lo("LSFE", VISIBLE, NONSTRICT, 16),
    lo("FAMINMAX", VISIBLE, NONSTRICT, 4),
];

static ID_AA64MMFR0: [FtrField; 14] = [
    lo("ECV", VISIBLE, STRICT, 60),
    hs("FGT", 56),
    hs("EXS", 44),
    fb("TGRAN4_2", UNSIGNED, HIDDEN, NONSTRICT, Exact, 40, 4, 1),
    fb("TGRAN64_2", UNSIGNED, HIDDEN, NONSTRICT, Exact, 36, 4, 1),
    fb("TGRAN16_2", UNSIGNED, HIDDEN, NONSTRICT, Exact, 32, 4, 1),
    // Safe values TGRAN4_NI = TGRAN64_NI = 0xf (signed fields), TGRAN16_NI = 0.
    fb("TGRAN4", SIGNED, HIDDEN, NONSTRICT, LowerSafe, 28, 4, 0xf),
    fb("TGRAN64", SIGNED, HIDDEN, NONSTRICT, LowerSafe, 24, 4, 0xf),
    lo("TGRAN16", HIDDEN, NONSTRICT, 20),
    hs("BIGENDEL0", 16),
    lo("SNSMEM", HIDDEN, NONSTRICT, 12),
    hs("BIGEND", 8),
    hs("ASIDBITS", 4),
    lo("PARANGE", HIDDEN, NONSTRICT, 0),
];

static ID_AA64MMFR1: [FtrField; 14] = [
    hs("ECBHB", 60),
    lo("TIDCP1", HIDDEN, NONSTRICT, 52),
    lo("AFP", VISIBLE, STRICT, 44),
    hs("HCX", 40),
    hs("ETS", 36),
    hs("TWED", 32),
    hs("XNX", 28),
    fb("SpecSEI", UNSIGNED, HIDDEN, STRICT, HigherSafe, 24, 4, 0),
    hs("PAN", 20),
    hs("LO", 16),
    hs("HPDS", 12),
    hs("VH", 8),
    hs("VMIDBits", 4),
    hs("HAFDBS", 0),
];

static ID_AA64MMFR2: [FtrField; 15] = [
    lo("E0PD", HIDDEN, NONSTRICT, 60),
    hs("EVT", 56),
    hs("BBM", 52),
    hs("TTL", 48),
    hs("FWB", 40),
    hs("IDS", 36),
    lo("AT", VISIBLE, STRICT, 32),
    hs("ST", 28),
    hs("NV", 24),
    hs("CCIDX", 20),
    hs("VARange", 16),
    lo("IESB", HIDDEN, NONSTRICT, 12),
    hs("LSM", 8),
    hs("UAO", 4),
    hs("CnP", 0),
];

static ID_AA64MMFR3: [FtrField; 4] = [
    lo("S1POE", VISIBLE, NONSTRICT, 16),
    lo("S1PIE", HIDDEN, NONSTRICT, 8),
    hs("SCTLRX", 4),
    lo("TCRX", HIDDEN, NONSTRICT, 0),
];

static ID_AA64MMFR4: [FtrField; 2] = [
    fb("E2H0", SIGNED, HIDDEN, STRICT, LowerSafe, 24, 4, 0),
    hs("NV_frac", 20),
];

static CTR_EL0: [FtrField; 8] = [
    fb("RES1", UNSIGNED, VISIBLE, STRICT, Exact, 31, 1, 1),
    fb("DIC", UNSIGNED, VISIBLE, STRICT, LowerSafe, 29, 1, 1),
    fb("IDC", UNSIGNED, VISIBLE, STRICT, LowerSafe, 28, 1, 1),
    fb("CWG", UNSIGNED, VISIBLE, STRICT, HigherOrZeroSafe, 24, 4, 0),
    fb("ERG", UNSIGNED, VISIBLE, STRICT, HigherOrZeroSafe, 20, 4, 0),
    fb("DminLine", UNSIGNED, VISIBLE, STRICT, LowerSafe, 16, 4, 1),
    // "If we have differing I-cache policies, report it as the weakest - VIPT" (0b10).
    fb("L1Ip", UNSIGNED, VISIBLE, NONSTRICT, Exact, 14, 2, 0b10),
    lo("IminLine", VISIBLE, STRICT, 0),
];

static DCZID_EL0: [FtrField; 2] = [
    fb("DZP", UNSIGNED, VISIBLE, STRICT, Exact, 4, 1, 1),
    lo("BS", VISIBLE, STRICT, 0),
];

/// One `arm64_ftr_regs[]` row in the feature-ID space.
const fn reg(name: &'static str, crm: u8, op2: u8, fields: &'static [FtrField]) -> FtrReg {
    FtrReg::new(name, (3, 0, 0, crm, op2), fields)
}

/// The feature-field tables, ascending by encoding as `arm64_ftr_regs[]` is (the kernel
/// binary-searches it): the 38 entries in op0=3, op1=0, CRn=0, CRm=1..7, then CTR_EL0 and
/// DCZID_EL0 (op1=3). CLIDR_EL1 has no ftr bits in any copy read.
pub static FTR_REGS: &[FtrReg] = &[
    // CRm = 1
    reg("ID_PFR0_EL1", 1, 0, &ID_PFR0),
    reg("ID_PFR1_EL1", 1, 1, &ID_PFR1),
    reg("ID_DFR0_EL1", 1, 2, &ID_DFR0),
    reg("ID_MMFR0_EL1", 1, 4, &ID_MMFR0),
    reg("ID_MMFR1_EL1", 1, 5, &ID_MMFR1),
    reg("ID_MMFR2_EL1", 1, 6, &ID_MMFR2),
    reg("ID_MMFR3_EL1", 1, 7, &ID_MMFR3),
    // CRm = 2
    reg("ID_ISAR0_EL1", 2, 0, &ID_ISAR0),
    reg("ID_ISAR1_EL1", 2, 1, &ID_ISAR1),
    reg("ID_ISAR2_EL1", 2, 2, &ID_ISAR2),
    reg("ID_ISAR3_EL1", 2, 3, &ID_ISAR3),
    reg("ID_ISAR4_EL1", 2, 4, &ID_ISAR4),
    reg("ID_ISAR5_EL1", 2, 5, &ID_ISAR5),
    reg("ID_MMFR4_EL1", 2, 6, &ID_MMFR4),
    reg("ID_ISAR6_EL1", 2, 7, &ID_ISAR6),
    // CRm = 3
    reg("MVFR0_EL1", 3, 0, &MVFR0),
    reg("MVFR1_EL1", 3, 1, &MVFR1),
    reg("MVFR2_EL1", 3, 2, &MVFR2),
    reg("ID_PFR2_EL1", 3, 4, &ID_PFR2),
    reg("ID_DFR1_EL1", 3, 5, &ID_DFR1),
    reg("ID_MMFR5_EL1", 3, 6, &ID_MMFR5),
    // CRm = 4
    reg("ID_AA64PFR0_EL1", 4, 0, &ID_AA64PFR0),
    reg("ID_AA64PFR1_EL1", 4, 1, &ID_AA64PFR1),
    reg("ID_AA64PFR2_EL1", 4, 2, &ID_AA64PFR2),
    reg("ID_AA64ZFR0_EL1", 4, 4, &ID_AA64ZFR0),
    reg("ID_AA64SMFR0_EL1", 4, 5, &ID_AA64SMFR0),
    reg("ID_AA64FPFR0_EL1", 4, 7, &ID_AA64FPFR0),
    // CRm = 5
    reg("ID_AA64DFR0_EL1", 5, 0, &ID_AA64DFR0),
    reg("ID_AA64DFR1_EL1", 5, 1, &[]), // ftr_raz
    // CRm = 6
    reg("ID_AA64ISAR0_EL1", 6, 0, &ID_AA64ISAR0),
    reg("ID_AA64ISAR1_EL1", 6, 1, &ID_AA64ISAR1),
    reg("ID_AA64ISAR2_EL1", 6, 2, &ID_AA64ISAR2),
    reg("ID_AA64ISAR3_EL1", 6, 3, &ID_AA64ISAR3),
    // CRm = 7
    reg("ID_AA64MMFR0_EL1", 7, 0, &ID_AA64MMFR0),
    reg("ID_AA64MMFR1_EL1", 7, 1, &ID_AA64MMFR1),
    reg("ID_AA64MMFR2_EL1", 7, 2, &ID_AA64MMFR2),
    reg("ID_AA64MMFR3_EL1", 7, 3, &ID_AA64MMFR3),
    reg("ID_AA64MMFR4_EL1", 7, 4, &ID_AA64MMFR4),
    // Op1 = 3, CRn = 0, CRm = 0
    FtrReg::new("CTR_EL0", (3, 3, 0, 0, 1), &CTR_EL0),
    FtrReg::new("DCZID_EL0", (3, 3, 0, 0, 7), &DCZID_EL0),
];
