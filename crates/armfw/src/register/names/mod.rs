//! Names of the arm64 system registers, keyed by encoding (op0, op1, CRn, CRm, op2).
//!
//! A KVM ONE_REG id of class 0x0013 (`KVM_REG_ARM64_SYSREG`) carries the encoding in its index,
//! `op0 << 14 | op1 << 11 | CRn << 7 | CRm << 3 | op2` (Linux `arch/arm64/include/uapi/asm/kvm.h`,
//! `KVM_REG_ARM64_SYSREG_*_SHIFT`); [`sysreg_name_of_id`] turns such an id into the
//! architectural name, [`sysreg_name`] and [`sysreg_by_name`] map between encodings and names.
//!
//! The table was generated from three Linux files, read from the `kernel-patches/bpf` mirror of
//! Linux (a tree with the GICv5 and FEAT_FGT2 registers):
//!
//! - `arch/arm64/tools/sysreg` at commit `bf97b5c9fcb16131cf9366311e8cf8d63fc353ec`: every
//!   `Sysreg <name> <op0> <op1> <CRn> <CRm> <op2>` line (the VHE `_EL12`/`_EL02` aliases
//!   included, the `SysregFields` and field blocks ignored);
//! - `arch/arm64/include/asm/sysreg.h` at commit `9aa9d5eaf78bc9e8cc0a017030ccf58329392368`:
//!   the `#define SYS_<name> sys_reg(op0, op1, crn, crm, op2)` registers the tools file lacks,
//!   with the indexed families expanded from their macros: `DBGB{V,C}Rn_EL1`/`DBGW{V,C}Rn_EL1`
//!   (2, 0, 0, n, 4..7; n 0..15), `PMEVCNTRn_EL0`/`PMEVTYPERn_EL0` (3, 3, 14, 8 + (n >> 3) /
//!   12 + (n >> 3), n & 7; n 0..30), `PMEVCNTSVRn_EL1`, the AMU counters `AMEV{CNTR,TYPER}{0,1}n_EL0`
//!   and `AMEVCNTVOFF{0,1}n_EL2` (n 0..15), `ICH_LRn_EL2`, `ICH_AP{0,1}Rn_EL2`, `ICC_AP{0,1}Rn_EL1`,
//!   the BRBE records `BRB{INF,SRC,TGT}n_EL1` (n 0..31), the system-PMU `SPMEV*n_EL0` and
//!   `SPMCGCRn_EL1`, and the trace unit's indexed `TRC*` registers (over their architected
//!   ranges); the instruction encodings (`SYS_DC_*`, `OP_TLBI_*`, `OP_AT_*`, ...), the AArch32
//!   `SYS_AARCH32_*` and the op0 = 0 `SYS_SVCR_SMSTART_*`/`SMSTOP_*` forms are not registers and
//!   are left out;
//! - `arch/arm64/kvm/sys_regs.c` at commit `9aa9d5eaf78bc9e8cc0a017030ccf58329392368`:
//!   `sys_reg_descs[]`, every register of which (all 520, macros expanded) is in the table.
//!
//! Where two names share an encoding the one `sys_reg_descs[]` uses is kept (`DBGDTRTX_EL0`, not
//! `DBGDTRRX_EL0`, at 2, 3, 0, 5, 0); where KVM uses neither, the tools file's (`ICH_HFGRTR_EL2`,
//! the GICv5 name, not the GICv3 `ICH_VSEIR_EL2` of `sysreg.h`, at 3, 4, 12, 9, 4). The encodings
//! KVM lists as `ID_UNALLOCATED(crm, op2)` (op0 3, op1 0, CRn 0; the descriptor is named
//! `"S3_0_0_<crm>_<op2>"`) have no name here and [`sysreg_name`] returns `None` for them; that
//! includes 3, 0, 0, 5, 2, which the tools file already names `ID_AA64DFR2_EL1` but KVM still
//! lists as unallocated. The kernel's descriptor names for the macro-built rows are the macro
//! text (`SYS_DBGBVRn_EL1(n)`, `SYS_AMEVCNTR0_EL0(n)`); this table uses the architectural
//! names (`DBGBVR0_EL1`, `AMEVCNTR00_EL0`).
//!
//! Data only: no I/O, no allocation.

use crate::abi::OneRegId;
use crate::abi::reg::{KVM_REG_SIZE_MASK, KVM_REG_SIZE_U64};

/// One named system register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SysRegName {
    /// op0 (2 for the debug and trace registers, 3 for the rest).
    pub op0: u8,
    /// op1.
    pub op1: u8,
    /// CRn.
    pub crn: u8,
    /// CRm.
    pub crm: u8,
    /// op2.
    pub op2: u8,
    /// The architectural name, as Linux spells it (`ID_AA64PFR0_EL1`, `SPSR_irq`, `SVCR`).
    pub name: &'static str,
}

impl SysRegName {
    /// The encoding as the 16-bit index of a KVM ONE_REG system-register id.
    pub const fn index(&self) -> u16 {
        encode(self.op0, self.op1, self.crn, self.crm, self.op2)
    }
}

/// `op0 << 14 | op1 << 11 | CRn << 7 | CRm << 3 | op2`, each field masked to its width
/// (2, 3, 4, 4, 3 bits): the index bits 15:0 of a KVM ONE_REG system-register id.
const fn encode(op0: u8, op1: u8, crn: u8, crm: u8, op2: u8) -> u16 {
    ((op0 as u16 & 0x3) << 14)
        | ((op1 as u16 & 0x7) << 11)
        | ((crn as u16 & 0xf) << 7)
        | ((crm as u16 & 0xf) << 3)
        | (op2 as u16 & 0x7)
}

mod table;

pub use table::SYSREG_NAMES;

/// The architectural name of the system register with this encoding.
///
/// `None` for an encoding the table does not name, including the `ID_UNALLOCATED` slots of
/// the op0 = 3, op1 = 0, CRn = 0 ID space that KVM lists anyway, and for out-of-range fields.
pub fn sysreg_name(op0: u8, op1: u8, crn: u8, crm: u8, op2: u8) -> Option<&'static str> {
    if op0 > 3 || op1 > 7 || crn > 15 || crm > 15 || op2 > 7 {
        return None;
    }
    let key = encode(op0, op1, crn, crm, op2);
    SYSREG_NAMES
        .binary_search_by_key(&key, SysRegName::index)
        .ok()
        .map(|i| SYSREG_NAMES[i].name)
}

/// The encoding of a named system register, as (op0, op1, CRn, CRm, op2).
///
/// The name is matched exactly (Linux's spelling: upper case but for `SPSR_irq` and its kin).
pub fn sysreg_by_name(name: &str) -> Option<(u8, u8, u8, u8, u8)> {
    SYSREG_NAMES
        .iter()
        .find(|r| r.name == name)
        .map(|r| (r.op0, r.op1, r.crn, r.crm, r.op2))
}

/// One field of a system-register index: `(index >> shift) & mask`, at most four bits wide.
fn index_field(index: u16, shift: u32, mask: u16) -> Option<u8> {
    u8::try_from((index >> shift) & mask).ok()
}

/// The architectural name of the system register a KVM ONE_REG id names.
///
/// `None` unless the class (bits 27:16) is 0x0013 (`KVM_REG_ARM64_SYSREG`) and the size
/// (bits 55:52) is `KVM_REG_SIZE_U64`; otherwise the index (bits 15:0) is decoded into
/// (op0, op1, CRn, CRm, op2) and looked up with [`sysreg_name`].
pub fn sysreg_name_of_id(id: u64) -> Option<&'static str> {
    let reg = OneRegId(id);
    if reg.class() != 0x0013 || id & KVM_REG_SIZE_MASK != KVM_REG_SIZE_U64 {
        return None;
    }
    let index = reg.index();
    sysreg_name(
        index_field(index, 14, 0x3)?,
        index_field(index, 11, 0x7)?,
        index_field(index, 7, 0xf)?,
        index_field(index, 3, 0xf)?,
        index_field(index, 0, 0x7)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::reg::KVM_REG_ARM64;

    /// A ONE_REG system-register id: `ARM64_SYS_REG(op0, op1, crn, crm, op2)` of Linux
    /// `arch/arm64/include/uapi/asm/kvm.h`.
    fn sys_reg_id(op0: u8, op1: u8, crn: u8, crm: u8, op2: u8) -> u64 {
        KVM_REG_ARM64
            | KVM_REG_SIZE_U64
            | (0x0013 << 16)
            | u64::from(encode(op0, op1, crn, crm, op2))
    }

    #[test]
    fn sorted_and_unique() {
        for pair in SYSREG_NAMES.windows(2) {
            assert!(
                pair[0].index() < pair[1].index(),
                "{} ({:#06x}) is not before {} ({:#06x})",
                pair[0].name,
                pair[0].index(),
                pair[1].name,
                pair[1].index()
            );
        }
        let mut names: Vec<&str> = SYSREG_NAMES.iter().map(|r| r.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "a name appears twice");
    }

    #[test]
    fn fields_in_range() {
        for r in SYSREG_NAMES {
            assert!(
                (2..=3).contains(&r.op0) && r.op1 <= 7 && r.crn <= 15 && r.crm <= 15 && r.op2 <= 7,
                "{}",
                r.name
            );
        }
    }

    #[test]
    fn round_trips() {
        for r in SYSREG_NAMES {
            assert_eq!(sysreg_name(r.op0, r.op1, r.crn, r.crm, r.op2), Some(r.name));
            assert_eq!(
                sysreg_by_name(r.name),
                Some((r.op0, r.op1, r.crn, r.crm, r.op2))
            );
            assert_eq!(
                sysreg_name_of_id(sys_reg_id(r.op0, r.op1, r.crn, r.crm, r.op2)),
                Some(r.name)
            );
        }
    }

    #[test]
    fn known_encodings() {
        type Known = ((u8, u8, u8, u8, u8), &'static str);
        let known: &[Known] = &[
            ((3, 0, 0, 0, 0), "MIDR_EL1"),
            ((3, 0, 0, 0, 5), "MPIDR_EL1"),
            ((3, 0, 0, 0, 6), "REVIDR_EL1"),
            ((3, 0, 0, 4, 0), "ID_AA64PFR0_EL1"),
            ((3, 0, 0, 7, 3), "ID_AA64MMFR3_EL1"),
            ((3, 3, 14, 3, 2), "CNTV_CVAL_EL0"),
            ((3, 3, 14, 3, 1), "CNTV_CTL_EL0"),
            ((3, 3, 14, 0, 2), "CNTVCT_EL0"),
            ((3, 3, 14, 2, 2), "CNTP_CVAL_EL0"),
            ((3, 0, 14, 1, 0), "CNTKCTL_EL1"),
            ((3, 3, 14, 8, 0), "PMEVCNTR0_EL0"),
            ((3, 3, 14, 11, 6), "PMEVCNTR30_EL0"),
            ((3, 3, 14, 15, 6), "PMEVTYPER30_EL0"),
            ((3, 3, 14, 15, 7), "PMCCFILTR_EL0"),
            ((2, 0, 0, 0, 4), "DBGBVR0_EL1"),
            ((2, 0, 0, 15, 7), "DBGWCR15_EL1"),
            ((2, 0, 0, 2, 2), "MDSCR_EL1"),
            ((2, 3, 0, 5, 0), "DBGDTRTX_EL0"),
            ((3, 0, 2, 1, 0), "APIAKEYLO_EL1"),
            ((3, 0, 2, 3, 1), "APGAKEYHI_EL1"),
            ((3, 0, 1, 0, 5), "RGSR_EL1"),
            ((3, 0, 5, 6, 1), "TFSRE0_EL1"),
            ((3, 0, 1, 2, 0), "ZCR_EL1"),
            ((3, 0, 10, 2, 4), "POR_EL1"),
            ((3, 3, 10, 2, 4), "POR_EL0"),
            ((3, 0, 2, 0, 3), "TCR2_EL1"),
            ((3, 0, 10, 2, 3), "PIR_EL1"),
            ((3, 0, 1, 0, 3), "SCTLR2_EL1"),
            ((3, 3, 4, 4, 2), "FPMR"),
            ((3, 3, 13, 4, 0), "AMEVCNTR00_EL0"),
            ((3, 3, 13, 15, 7), "AMEVTYPER115_EL0"),
            ((3, 4, 1, 1, 0), "HCR_EL2"),
            ((3, 4, 4, 3, 0), "SPSR_irq"),
            ((3, 4, 12, 13, 7), "ICH_LR15_EL2"),
            ((3, 5, 14, 3, 2), "CNTV_CVAL_EL02"),
            ((3, 6, 4, 1, 0), "SP_EL2"),
        ];
        for &((op0, op1, crn, crm, op2), name) in known {
            assert_eq!(sysreg_name(op0, op1, crn, crm, op2), Some(name), "{name}");
            assert_eq!(
                sysreg_by_name(name),
                Some((op0, op1, crn, crm, op2)),
                "{name}"
            );
        }
    }

    #[test]
    fn all_pmu_event_registers() {
        for n in 0u8..31 {
            let (crm, op2) = (n >> 3, n & 7);
            assert_eq!(
                sysreg_name(3, 3, 14, 8 + crm, op2),
                Some(format!("PMEVCNTR{n}_EL0").as_str())
            );
            assert_eq!(
                sysreg_name(3, 3, 14, 12 + crm, op2),
                Some(format!("PMEVTYPER{n}_EL0").as_str())
            );
        }
    }

    #[test]
    fn id_space_unallocated_slots_have_no_name() {
        let unallocated = [
            (3, 3),
            (3, 7),
            (4, 3),
            (4, 6),
            (5, 2),
            (5, 3),
            (5, 6),
            (5, 7),
            (6, 4),
            (6, 5),
            (6, 6),
            (6, 7),
            (7, 5),
            (7, 6),
            (7, 7),
        ];
        for (crm, op2) in unallocated {
            assert_eq!(sysreg_name(3, 0, 0, crm, op2), None, "S3_0_0_{crm}_{op2}");
        }
        // Every other slot of CRm 1..7 is named.
        for crm in 1u8..8 {
            for op2 in 0u8..8 {
                if !unallocated.contains(&(crm, op2)) {
                    assert!(
                        sysreg_name(3, 0, 0, crm, op2).is_some(),
                        "S3_0_0_{crm}_{op2}"
                    );
                }
            }
        }
    }

    #[test]
    fn unknown_and_out_of_range() {
        assert_eq!(sysreg_name(3, 7, 15, 15, 7), None);
        assert_eq!(sysreg_name(4, 0, 0, 0, 0), None);
        assert_eq!(sysreg_name(3, 8, 0, 0, 0), None);
        assert_eq!(sysreg_name(3, 0, 16, 0, 0), None);
        assert_eq!(sysreg_by_name("NOT_A_REGISTER"), None);
        assert_eq!(sysreg_by_name("midr_el1"), None);
    }

    #[test]
    fn one_reg_ids() {
        // ARM64_SYS_REG(3, 0, 0, 0, 0): MIDR_EL1.
        assert_eq!(sysreg_name_of_id(0x6030_0000_0013_c000), Some("MIDR_EL1"));
        // CNTV_CVAL_EL0, the KVM_REG_ARM_TIMER_CVAL id.
        assert_eq!(
            sysreg_name_of_id(0x6030_0000_0013_df1a),
            Some("CNTV_CVAL_EL0")
        );
        assert_eq!(
            sysreg_name_of_id(sys_reg_id(3, 3, 14, 11, 6)),
            Some("PMEVCNTR30_EL0")
        );
        // A 32-bit size is not a system-register id KVM lists.
        assert_eq!(sysreg_name_of_id(0x6020_0000_0013_c000), None);
        // Other classes: core (0x10), firmware (0x14).
        assert_eq!(sysreg_name_of_id(0x6030_0000_0010_0000), None);
        assert_eq!(sysreg_name_of_id(0x6030_0000_0014_0000), None);
        // An unallocated ID slot.
        assert_eq!(sysreg_name_of_id(sys_reg_id(3, 0, 0, 3, 3)), None);
    }
}
