//! The kernel's CPU feature-field tables (`struct arm64_ftr_bits`) for the ID registers, as
//! data: per register its encoding and, per field, shift, width, sign, safe-value type, safe
//! value, `FTR_VISIBLE` and `FTR_STRICT`.
//!
//! KVM's writable-ID-register check (`arm64_check_features()` in `arch/arm64/kvm/sys_regs.c`,
//! 6.7 and later) walks exactly these tables: a field userspace may write is accepted when
//! [`safe_value`] of (new, limit) is the new value, so a model of KVM_SET_ONE_REG on an ID
//! register needs them.
//!
//! # Source
//!
//! The table is `arm64_ftr_regs[]` and the `ftr_*[]` arrays of
//! `arch/arm64/kernel/cpufeature.c`, read from the newest copy the store held:
//! `ColinIanKing/linux-next`, commit `0e7ce595cd5dc113e1271be51b888a3672076296` (a linux-next
//! tree of the 6.17/6.18 cycle (inferred from its contents: `ID_AA64ISAR3_EL1` has FPRCVT, LSFE
//! and FAMINMAX, `ID_AA64PFR2_EL1` has MTESTOREONLY, `MPAMIDR_EL1` is in the table)). The field
//! positions (`*_SHIFT`) come from `arch/arm64/tools/sysreg` of the same tree (commit
//! `75dcb5fe17673cc05534528248e8d3a21a2f352e`). The macros are `__ARM64_FTR_BITS(SIGNED,
//! VISIBLE, STRICT, TYPE, SHIFT, WIDTH, SAFE_VAL)`, `ARM64_FTR_BITS` (unsigned) and
//! `S_ARM64_FTR_BITS` (signed) in the same file. `torvalds/linux` itself was stored only at
//! two old commits (`9dc232a8ab18…`, a 5.1x tree, and `010338d729c1…`, a 6.3/6.4-era tree
//! (inferred)); no 6.1, 6.12 or 7.x `torvalds/linux` copy of `cpufeature.c` was readable, so the
//! rows below are those of the linux-next tree, the newest read.
//!
//! `FTR_VISIBLE_IF_IS_ENABLED(CONFIG_…)` fields (SVE, SME, MTE, BTI, PTR_AUTH, GCS, POE) are
//! given as visible: that is their value in a kernel built with the option, as distribution
//! kernels are.
//!
//! Registers with no `arm64_ftr_regs[]` entry (ID_AFR0_EL1, ID_AA64AFR0/1_EL1,
//! ID_AA64DFR2_EL1, the unallocated encodings, and CLIDR_EL1, which the kernel does not
//! sanitise at all) have no row: [`ftr_reg`] answers `None`, as `get_arm64_ftr_reg()` answers
//! NULL (and KVM's `arm64_check_features()` then returns EINVAL unless the register is RAZ).
//! ID_AA64DFR1_EL1 is in the table with no fields (`ftr_raz`), so every bit of it is treated
//! as strict RES0.
//!
//! # What changed between releases
//!
//! Established from the two old `torvalds/linux` copies against the newest, and from patch
//! mails in the store (release numbers are those of the feature's merge, inferred where
//! marked):
//!
//! | since | register | field | change | source |
//! | --- | --- | --- | --- | --- |
//! | before 6.1 | ID_ISAR5_EL1 | CRC32, SHA2, SHA1, AES | HIDDEN → VISIBLE | 5.1x copy has them hidden, 6.3-era copy visible |
//! | before 6.1 | ID_ISAR6_EL1 | I8MM, BF16, SB, FHM, DP | HIDDEN → VISIBLE | same two copies |
//! | 6.3 (inferred) | ID_AA64ISAR2_EL1 | CSSC, RPRFM | added | 6.3-era copy has them, 5.1x copy not |
//! | after 6.4 (inferred 6.5) | ID_AA64ISAR2_EL1 | MOPS | added, VISIBLE STRICT LOWER_SAFE | newest has it, 6.3-era not |
//! | after 6.4 | ID_AA64ISAR2_EL1 | BC | HIDDEN HIGHER_SAFE → VISIBLE LOWER_SAFE | 6.3-era: `FTR_HIDDEN, FTR_STRICT, FTR_HIGHER_SAFE`; newest: `FTR_VISIBLE, FTR_STRICT, FTR_LOWER_SAFE` |
//! | after 6.4 | ID_AA64ISAR2_EL1 | LUT, CLRBHB | added | newest only |
//! | after 6.4 | ID_AA64ISAR1_EL1 | XS | added (HIDDEN) | newest only |
//! | after 6.4 (inferred 6.9) | ID_AA64PFR2_EL1, ID_AA64FPFR0_EL1, ID_AA64ISAR3_EL1 | — | registers added to `arm64_ftr_regs[]` (first empty, fields later: FPMR, F8*, FAMINMAX, FPRCVT, LSFE, MTEFAR, MTESTOREONLY) | patch mails adding `ftr_id_aa64isar3[]`, `ftr_id_aa64pfr2[]`, `ftr_id_aa64fpfr0[]` empty, then each field |
//! | after 6.4 (inferred 6.6–6.8) | ID_AA64MMFR3_EL1, ID_AA64MMFR4_EL1 | TCRX, SCTLRX, S1PIE, S1POE; NV_frac, E2H0 | registers added | newest only |
//! | after 6.4 | ID_AA64PFR1_EL1 | DF2, GCS, MTE_frac | added | newest only |
//! | after 6.4 | ID_AA64ZFR0_EL1 | F16MM, B16B16, EltPerm | added | newest only |
//! | after 6.4 | ID_AA64SMFR0_EL1 | LUTv2, F8F16, F8F32, SF8FMA, SF8DP4, SF8DP2, SBitPerm, AES, SFEXPA, STMOP, SMOP4 | added | newest only |
//! | after 6.4 | ID_AA64MMFR1_EL1 | ECBHB, HCX | added | newest only |
//! | 7.x (inferred, not read in a tree) | ID_AA64ISAR3_EL1 | LSUI (27:24) | added `FTR_HIDDEN, FTR_NONSTRICT, FTR_LOWER_SAFE`, safe `LSUI_NI` | patch mails only; not in the table below |
//!
//! Unchanged in every copy read: ID_AA64PFR0_EL1 (CSV2/CSV3 hidden non-strict LOWER_SAFE;
//! FP/AdvSIMD signed, safe NI = 0xf), ID_AA64DFR0_EL1 (PMUVer signed EXACT safe 0, DebugVer
//! EXACT safe 6), ID_DFR0_EL1 (PerfMon signed EXACT), CTR_EL0, DCZID_EL0, ID_AA64MMFR0/2_EL1,
//! and the AArch32 registers apart from ISAR5/ISAR6. `arm64_ftr_safe_value()` is the same in
//! all three copies (made non-static in the newest, for KVM).
//!
//! KVM does not use the host's safe type everywhere: `kvm_arm64_ftr_safe_value()` (in
//! `sys_regs.c`, newest) treats ID_AA64DFR0_EL1.PMUVer, ID_AA64DFR0_EL1.DebugVer and
//! ID_DFR0_EL1.PerfMon as [`FtrType::LowerSafe`]; [`kvm_kind`] gives that view.

/// How a field's safe value is chosen (`enum ftr_type` and `arm64_ftr_safe_value()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FtrType {
    /// `FTR_EXACT`: a mismatch falls back to the field's fixed safe value.
    Exact,
    /// `FTR_LOWER_SAFE`: the smaller of the two values is safe.
    LowerSafe,
    /// `FTR_HIGHER_SAFE`: the larger of the two values is safe.
    HigherSafe,
    /// `FTR_HIGHER_OR_ZERO_SAFE`: zero if either value is zero, else the larger.
    HigherOrZeroSafe,
}

/// One field of an ID register (`struct arm64_ftr_bits`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FtrField {
    /// The field's name as `arch/arm64/tools/sysreg` spells it (`RES1` for CTR_EL0 bit 31;
    /// the `ftr_generic_32bits` rows carry the sysreg names of their register).
    pub name: &'static str,
    /// The lowest bit of the field.
    pub shift: u8,
    /// The number of bits.
    pub width: u8,
    /// `FTR_SIGNED`: the field is read sign-extended ([`field_value`]).
    pub signed: bool,
    /// How a mismatch is resolved.
    pub kind: FtrType,
    /// The ftr_bits `safe_val` (used by [`FtrType::Exact`]; for other kinds it is what the
    /// kernel shows userspace for a hidden field).
    pub safe: i64,
    /// `FTR_VISIBLE` (userspace MRS emulation shows the field).
    pub visible: bool,
    /// `FTR_STRICT` (a mismatch between CPUs taints the kernel).
    pub strict: bool,
}

/// One ID register with its fields (`struct __ftr_reg_entry` of `arm64_ftr_regs[]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FtrReg {
    /// The register's name without the `SYS_` prefix.
    pub name: &'static str,
    /// (op0, op1, CRn, CRm, op2).
    pub encoding: (u8, u8, u8, u8, u8),
    /// The fields, highest shift first, as in the kernel array. Bits no field covers are
    /// strict RES0 for the kernel.
    pub fields: &'static [FtrField],
}

/// Builds one row; the arguments in the kernel macro's order after the name.
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
    FtrReg {
        name,
        encoding: (3, 0, 0, crm, op2),
        fields,
    }
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
    FtrReg {
        name: "CTR_EL0",
        encoding: (3, 3, 0, 0, 1),
        fields: &CTR_EL0,
    },
    FtrReg {
        name: "DCZID_EL0",
        encoding: (3, 3, 0, 0, 7),
        fields: &DCZID_EL0,
    },
];

/// The table of the register at (op0, op1, CRn, CRm, op2), or `None` where the kernel has no
/// `arm64_ftr_regs[]` entry for it (`get_arm64_ftr_reg()` returning NULL).
#[must_use]
pub fn ftr_reg(op0: u8, op1: u8, crn: u8, crm: u8, op2: u8) -> Option<&'static FtrReg> {
    let key = (op0, op1, crn, crm, op2);
    FTR_REGS
        .binary_search_by(|r| r.encoding.cmp(&key))
        .ok()
        .and_then(|i| FTR_REGS.get(i))
}

/// The field's safe value for a `new` value against a `cur` one, as the kernel's
/// `arm64_ftr_safe_value()` (`arch/arm64/kernel/cpufeature.c`, identical in every copy read):
///
/// ```c
/// s64 arm64_ftr_safe_value(const struct arm64_ftr_bits *ftrp, s64 new, s64 cur)
/// {
///     s64 ret = 0;
///
///     switch (ftrp->type) {
///     case FTR_EXACT:
///         ret = ftrp->safe_val;
///         break;
///     case FTR_LOWER_SAFE:
///         ret = min(new, cur);
///         break;
///     case FTR_HIGHER_OR_ZERO_SAFE:
///         if (!cur || !new)
///             break;
///         fallthrough;
///     case FTR_HIGHER_SAFE:
///         ret = max(new, cur);
///         break;
///     default:
///         BUG();
///     }
///
///     return ret;
/// }
/// ```
///
/// Note that `FTR_EXACT` returns the safe value even when `new == cur`: callers (the boot
/// CPU sanitising, KVM's `arm64_check_features()`) only ask when the two differ.
#[must_use]
pub fn safe_value(field: &FtrField, new: i64, cur: i64) -> i64 {
    match field.kind {
        FtrType::Exact => field.safe,
        FtrType::LowerSafe => new.min(cur),
        FtrType::HigherOrZeroSafe if cur == 0 || new == 0 => 0,
        FtrType::HigherOrZeroSafe | FtrType::HigherSafe => new.max(cur),
    }
}

/// The safe-value type KVM uses for a field of the register at `encoding`
/// (`kvm_arm64_ftr_safe_value()` in `arch/arm64/kvm/sys_regs.c`, 6.7 and later): the host's
/// type, except ID_AA64DFR0_EL1.PMUVer, ID_AA64DFR0_EL1.DebugVer and ID_DFR0_EL1.PerfMon,
/// which KVM treats as [`FtrType::LowerSafe`] (the host has them `FTR_EXACT`).
#[must_use]
pub fn kvm_kind(encoding: (u8, u8, u8, u8, u8), field: &FtrField) -> FtrType {
    match (encoding, field.shift) {
        // ID_AA64DFR0_EL1: PMUVer (8), DebugVer (0).
        ((3, 0, 0, 5, 0), 8 | 0) | ((3, 0, 0, 1, 2), 24) => FtrType::LowerSafe,
        _ => field.kind,
    }
}

/// The mask of the field's bits in the register (`arm64_ftr_mask()`).
#[must_use]
pub fn field_mask(field: &FtrField) -> u64 {
    let ones = match field.width {
        0 => 0,
        w if w >= 64 => u64::MAX,
        w => (1u64 << w) - 1,
    };
    ones.checked_shl(u32::from(field.shift)).unwrap_or(0)
}

/// Reinterprets the 64 bits of `v` as a two's-complement `i64` (the C `(s64)` cast of a `u64`),
/// without a lossy `as`.
fn bits_as_i64(v: u64) -> i64 {
    i64::from_ne_bytes(v.to_ne_bytes())
}

/// The field's value in `reg`, as the kernel's `arm64_ftr_value()`: sign-extended for a
/// signed field (`cpuid_feature_extract_signed_field_width()`:
/// `(s64)(features << (64 - width - field)) >> (64 - width)`), zero-extended otherwise.
#[must_use]
pub fn field_value(field: &FtrField, reg: u64) -> i64 {
    let width = u32::from(field.width);
    let shift = u32::from(field.shift);
    if width == 0 || width + shift > 64 {
        return 0;
    }
    if field.signed {
        let up = bits_as_i64(reg << (64 - width - shift));
        up >> (64 - width)
    } else {
        bits_as_i64((reg & field_mask(field)) >> shift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(reg: &FtrReg, name: &str) -> FtrField {
        *reg.fields
            .iter()
            .find(|f| f.name == name)
            .expect("field in table")
    }

    #[test]
    fn table_is_sorted_and_fields_do_not_overlap() {
        // What sort_ftr_regs() checks at boot.
        for pair in FTR_REGS.windows(2) {
            assert!(
                pair[0].encoding < pair[1].encoding,
                "{} before {}",
                pair[0].name,
                pair[1].name
            );
        }
        for r in FTR_REGS {
            for f in r.fields {
                assert!(
                    u32::from(f.shift) + u32::from(f.width) <= 64,
                    "{}.{}",
                    r.name,
                    f.name
                );
            }
            for pair in r.fields.windows(2) {
                assert!(
                    pair[1].shift + pair[1].width <= pair[0].shift,
                    "{}: {} overlaps {}",
                    r.name,
                    pair[1].name,
                    pair[0].name
                );
            }
        }
    }

    #[test]
    fn covers_the_id_space_entries() {
        let in_space = FTR_REGS
            .iter()
            .filter(|r| matches!(r.encoding, (3, 0, 0, 1..=7, _)))
            .count();
        assert_eq!(in_space, 38);
        assert!(ftr_reg(3, 3, 0, 0, 1).is_some(), "CTR_EL0");
        assert!(ftr_reg(3, 3, 0, 0, 7).is_some(), "DCZID_EL0");
        assert!(
            ftr_reg(3, 1, 0, 0, 1).is_none(),
            "CLIDR_EL1 has no ftr bits"
        );
        assert!(
            ftr_reg(3, 0, 0, 1, 3).is_none(),
            "ID_AFR0_EL1 has no ftr bits"
        );
        assert!(
            ftr_reg(3, 0, 0, 5, 2).is_none(),
            "ID_AA64DFR2_EL1 has no entry"
        );
        assert!(
            ftr_reg(3, 0, 0, 5, 1).is_some_and(|r| r.fields.is_empty()),
            "ftr_raz"
        );
    }

    #[test]
    fn rows_read_from_the_source() {
        let pfr0 = ftr_reg(3, 0, 0, 4, 0).expect("ID_AA64PFR0_EL1");
        assert_eq!(pfr0.name, "ID_AA64PFR0_EL1");
        let csv2 = field(pfr0, "CSV2");
        assert_eq!((csv2.shift, csv2.width, csv2.signed), (56, 4, false));
        assert_eq!(csv2.kind, FtrType::LowerSafe);
        assert!(!csv2.visible && !csv2.strict);
        let fp = field(pfr0, "FP");
        assert_eq!((fp.shift, fp.signed, fp.safe), (16, true, 0xf));
        let simd = field(pfr0, "AdvSIMD");
        assert_eq!(
            (simd.shift, simd.signed, simd.kind),
            (20, true, FtrType::LowerSafe)
        );

        let dfr0 = ftr_reg(3, 0, 0, 5, 0).expect("ID_AA64DFR0_EL1");
        let pmuver = field(dfr0, "PMUVer");
        assert_eq!(
            (pmuver.shift, pmuver.signed, pmuver.kind),
            (8, true, FtrType::Exact)
        );
        assert_eq!(kvm_kind(dfr0.encoding, &pmuver), FtrType::LowerSafe);
        let debugver = field(dfr0, "DebugVer");
        assert_eq!((debugver.kind, debugver.safe), (FtrType::Exact, 6));
        assert_eq!(kvm_kind(dfr0.encoding, &debugver), FtrType::LowerSafe);
        assert_eq!(
            kvm_kind(dfr0.encoding, &field(dfr0, "WRPs")),
            FtrType::LowerSafe
        );

        let ctr = ftr_reg(3, 3, 0, 0, 1).expect("CTR_EL0");
        assert_eq!(field(ctr, "CWG").kind, FtrType::HigherOrZeroSafe);
        let l1ip = field(ctr, "L1Ip");
        assert_eq!(
            (l1ip.shift, l1ip.width, l1ip.kind, l1ip.safe),
            (14, 2, FtrType::Exact, 2)
        );

        let mmfr1 = ftr_reg(3, 0, 0, 7, 1).expect("ID_AA64MMFR1_EL1");
        assert_eq!(field(mmfr1, "SpecSEI").kind, FtrType::HigherSafe);
        let isar2 = ftr_reg(3, 0, 0, 6, 2).expect("ID_AA64ISAR2_EL1");
        let bc = field(isar2, "BC");
        assert_eq!(
            (bc.shift, bc.kind, bc.visible),
            (20, FtrType::LowerSafe, true)
        );
    }

    #[test]
    fn safe_value_follows_the_kernel() {
        let pfr0 = ftr_reg(3, 0, 0, 4, 0).expect("ID_AA64PFR0_EL1");
        let csv2 = field(pfr0, "CSV2");
        assert_eq!(safe_value(&csv2, 2, 1), 1);
        assert_eq!(safe_value(&csv2, 0, 1), 0);
        // Signed LOWER_SAFE: -1 (not implemented) is below 0 (implemented).
        let fp = field(pfr0, "FP");
        assert_eq!(safe_value(&fp, -1, 1), -1);

        let ctr = ftr_reg(3, 3, 0, 0, 1).expect("CTR_EL0");
        let cwg = field(ctr, "CWG");
        assert_eq!(safe_value(&cwg, 0, 4), 0);
        assert_eq!(safe_value(&cwg, 4, 0), 0);
        assert_eq!(safe_value(&cwg, 3, 4), 4);
        let l1ip = field(ctr, "L1Ip");
        assert_eq!(safe_value(&l1ip, 3, 2), 2);
        assert_eq!(safe_value(&l1ip, 3, 3), 2, "EXACT ignores equality");

        let mmfr1 = ftr_reg(3, 0, 0, 7, 1).expect("ID_AA64MMFR1_EL1");
        assert_eq!(safe_value(&field(mmfr1, "SpecSEI"), 0, 1), 1);
    }

    #[test]
    fn field_value_sign_extends_signed_fields() {
        let pfr0 = ftr_reg(3, 0, 0, 4, 0).expect("ID_AA64PFR0_EL1");
        let fp = field(pfr0, "FP");
        assert_eq!(field_value(&fp, 0xf << 16), -1);
        assert_eq!(field_value(&fp, 0x1 << 16), 1);
        let csv3 = field(pfr0, "CSV3");
        assert_eq!(field_value(&csv3, 0xf << 60), 15);
        assert_eq!(field_mask(&csv3), 0xf << 60);
        let fa64 = field(ftr_reg(3, 0, 0, 4, 5).expect("SMFR0"), "FA64");
        assert_eq!(field_value(&fa64, 1 << 63), 1);
        assert_eq!(field_mask(&fa64), 1 << 63);
    }
}
