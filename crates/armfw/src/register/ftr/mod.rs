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
    /// The field's bits in the register (`arm64_ftr_mask()`), derived from `shift` and
    /// `width` when the row is built ([`FtrField::mask_of`]).
    pub mask: u64,
}

impl FtrField {
    /// `arm64_ftr_mask()` of a field at `shift` of `width` bits: what [`FtrField::mask`]
    /// holds.
    #[must_use]
    pub const fn mask_of(shift: u8, width: u8) -> u64 {
        let ones = match width {
            0 => 0,
            w if w >= 64 => u64::MAX,
            w => (1u64 << w) - 1,
        };
        if shift >= 64 { 0 } else { ones << shift }
    }
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
    /// For each bit of the register, the index in `fields` of the field that holds it, or
    /// [`NO_FIELD`]: [`FtrReg::new`] derives it from `fields`, so that a check finds the
    /// field of a changed bit with one load.
    pub field_of_bit: [u8; 64],
}

/// [`FtrReg::field_of_bit`] of a bit no field covers.
pub const NO_FIELD: u8 = u8::MAX;

impl FtrReg {
    /// A row: the register's name, encoding and fields, with the bit → field table.
    #[must_use]
    pub const fn new(
        name: &'static str,
        encoding: (u8, u8, u8, u8, u8),
        fields: &'static [FtrField],
    ) -> FtrReg {
        let mut field_of_bit = [NO_FIELD; 64];
        // `index` counts along with `i` (a const fn has no `u8::try_from`); a register has
        // at most 64 fields, far below NO_FIELD.
        let (mut i, mut index) = (0, 0u8);
        while i < fields.len() && index < NO_FIELD {
            let f = &fields[i];
            let (mut b, end) = (f.shift, f.shift.saturating_add(f.width));
            while b < end && b < 64 {
                field_of_bit[b as usize] = index;
                b += 1;
            }
            i += 1;
            index += 1;
        }
        FtrReg {
            name,
            encoding,
            fields,
            field_of_bit,
        }
    }

    /// The field that holds `bit` (0..=63), if one does.
    #[inline]
    #[must_use]
    pub fn field_at(&self, bit: u32) -> Option<&'static FtrField> {
        let i = *self.field_of_bit.get(bit as usize)?;
        self.fields.get(usize::from(i))
    }
}

/// Builds one row; the arguments in the kernel macro's order after the name.
mod tables;

pub use tables::FTR_REGS;

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
    safe_value_as(field.kind, field, new, cur)
}

/// [`safe_value`] with the safe-value type `kind` in place of the field's own (KVM's view,
/// [`kvm_kind`]).
#[inline]
#[must_use]
pub fn safe_value_as(kind: FtrType, field: &FtrField, new: i64, cur: i64) -> i64 {
    match kind {
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
#[inline]
pub fn kvm_kind(encoding: (u8, u8, u8, u8, u8), field: &FtrField) -> FtrType {
    match (encoding, field.shift) {
        // ID_AA64DFR0_EL1: PMUVer (8), DebugVer (0).
        ((3, 0, 0, 5, 0), 8 | 0) | ((3, 0, 0, 1, 2), 24) => FtrType::LowerSafe,
        _ => field.kind,
    }
}

/// The mask of the field's bits in the register (`arm64_ftr_mask()`).
#[must_use]
#[inline]
pub fn field_mask(field: &FtrField) -> u64 {
    field.mask
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
#[inline]
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
    fn the_bit_table_names_the_field_of_every_bit() {
        for r in FTR_REGS {
            for bit in 0..64u32 {
                let holder = r.fields.iter().find(|f| field_mask(f) & (1u64 << bit) != 0);
                assert_eq!(
                    r.field_at(bit).map(|f| f.name),
                    holder.map(|f| f.name),
                    "{} bit {bit}",
                    r.name
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
