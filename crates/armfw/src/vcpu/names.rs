//! The name of any ONE_REG id, as `armfw regs` shows it: the firmware registers by their uapi
//! names, the core registers by their `struct kvm_regs` field, the SVE registers, the demux
//! by its CSSELR value, the timer ids by their uapi names (their encodings are swapped, so a
//! decoding would mislead), and the other system registers by their architectural names
//! ([`crate::register::names`]) or, where none is known, the raw encoding `S3_0_C0_C4_0`.

use crate::abi::vcpu_reg::{
    PTIMER_CNT, PTIMER_CTL, PTIMER_CVAL, SVE_VLS, TIMER_CNT, TIMER_CTL, TIMER_CVAL, sysreg_encoding,
};
use crate::abi::{FwReg, OneRegId};
use crate::register::RegClass;
use crate::register::names::sysreg_name;

/// The name of `id`.
pub fn reg_name(id: u64) -> String {
    if let Some(r) = FwReg::from_id(id) {
        return r.name().to_string();
    }
    let timer = match id {
        TIMER_CTL => Some("TIMER_CTL"),
        TIMER_CNT => Some("TIMER_CNT"),
        TIMER_CVAL => Some("TIMER_CVAL"),
        PTIMER_CTL => Some("PTIMER_CTL"),
        PTIMER_CNT => Some("PTIMER_CNT"),
        PTIMER_CVAL => Some("PTIMER_CVAL"),
        _ => None,
    };
    if let Some(t) = timer {
        return t.to_string();
    }
    let r = OneRegId(id);
    match RegClass::from_value(r.class()) {
        Some(RegClass::Core) => core_name(u64::from(r.index())),
        Some(RegClass::Sve) => sve_name(id),
        Some(RegClass::Demux) => format!("CCSIDR_EL1[CSSELR={}]", id & 0xff),
        Some(RegClass::SysReg) => {
            let (op0, op1, crn, crm, op2) = sysreg_encoding(id);
            sysreg_name(op0, op1, crn, crm, op2).map_or_else(
                || format!("S{op0}_{op1}_C{crn}_C{crm}_{op2}"),
                str::to_string,
            )
        }
        _ => format!("{r}"),
    }
}

/// A core register by its offset (u32 units) into `struct kvm_regs`.
fn core_name(off: u64) -> String {
    match off {
        0..=0x3c if off % 2 == 0 => format!("X{}", off / 2),
        0x3e => "SP".into(),
        0x40 => "PC".into(),
        0x42 => "PSTATE".into(),
        0x44 => "SP_EL1".into(),
        0x46 => "ELR_EL1".into(),
        0x48..=0x50 if off % 2 == 0 => format!("SPSR[{}]", (off - 0x48) / 2),
        0x54..=0xd0 if off % 4 == 0 => format!("V{}", (off - 0x54) / 4),
        0xd4 => "FPSR".into(),
        0xd5 => "FPCR".into(),
        _ => format!("core+{off:#x}"),
    }
}

fn sve_name(id: u64) -> String {
    if id == SVE_VLS {
        return "SVE_VLS".into();
    }
    let index = id & 0xffff;
    let (n, slice) = (index >> 5 & 0x1f, index & 0x1f);
    let base = match index {
        0..0x400 => format!("Z{n}"),
        0x400..0x600 => format!("P{}", n & 0xf),
        _ => "FFR".into(),
    };
    if slice == 0 {
        base
    } else {
        format!("{base}[slice {slice}]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_uapi() {
        assert_eq!(reg_name(0x6030_0000_0010_0000), "X0");
        assert_eq!(reg_name(0x6030_0000_0010_0042), "PSTATE");
        assert_eq!(reg_name(0x6040_0000_0010_0054), "V0");
        assert_eq!(reg_name(0x6020_0000_0010_00d5), "FPCR");
        assert_eq!(reg_name(0x6080_0000_0015_03e0), "Z31");
        assert_eq!(reg_name(0x6050_0000_0015_05e0), "P15");
        assert_eq!(reg_name(0x6050_0000_0015_0600), "FFR");
        assert_eq!(reg_name(SVE_VLS), "SVE_VLS");
        assert_eq!(reg_name(0x6020_0000_0011_0002), "CCSIDR_EL1[CSSELR=2]");
        assert_eq!(reg_name(0x6030_0000_0013_c000), "MIDR_EL1");
        assert_eq!(reg_name(TIMER_CNT), "TIMER_CNT");
        assert_eq!(reg_name(0x6030_0000_0014_0000), "PSCI_VERSION");
    }
}
