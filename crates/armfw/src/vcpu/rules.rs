//! KVM's answers to KVM_GET_ONE_REG / KVM_SET_ONE_REG for the register classes outside the
//! firmware registers, one function per class, each citing the kernel function it follows
//! (Linux `arch/arm64/kvm/guest.c`, `sys_regs.c`, `arch_timer.c`, `pmu-emul.c`; the rules
//! per release are in docs/sysreg-set-rules.md).
//!
//! The classification of an id ([`Kind`]) is the kernel's dispatch in `kvm_arm_get_reg()` /
//! `kvm_arm_set_reg()`: the architecture check, then core, firmware, SVE, the timer ids,
//! the demux, and last the system-register table.

use crate::abi::reg::KVM_REG_ARM64;
use crate::abi::vcpu_reg::{
    PTIMER_CNT, PTIMER_CTL, PTIMER_CVAL, SVE_VLS, TIMER_CNT, TIMER_CTL, TIMER_CVAL, sysreg_encoding,
};
use crate::abi::{Errno, OneRegId};
use crate::register::RegClass;
use crate::release::Release;

mod id;
pub use id::{IdCheck, IdSpecial, checked_fields, id_set, imp_set, takes_host_value};

/// How KVM dispatches an id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Bits 32-63 (size aside) are not `KVM_REG_ARM64`: EINVAL for every access.
    NotArm64,
    /// Class 0x10: an offset into `struct kvm_regs`.
    Core,
    /// Classes 0x14 and 0x16: the firmware engine's.
    Firmware,
    /// Class 0x15.
    Sve,
    /// One of the timer ids `guest.c` handles itself (`is_timer_reg()`).
    Timer,
    /// Class 0x11.
    Demux,
    /// Everything else goes to the system-register table (`kvm_arm_sys_reg_get_reg()`).
    SysReg,
}

/// The dispatch of `id`.
pub fn kind(id: u64, release: Release) -> Kind {
    if (id & !crate::abi::reg::KVM_REG_SIZE_MASK) >> 32 != KVM_REG_ARM64 >> 32 {
        return Kind::NotArm64;
    }
    let class = RegClass::from_value(OneRegId(id).class());
    match class {
        Some(RegClass::Core) => Kind::Core,
        Some(RegClass::Firmware | RegClass::FirmwareBitmap) => Kind::Firmware,
        Some(RegClass::Sve) => Kind::Sve,
        _ if is_timer(id, release) => Kind::Timer,
        Some(RegClass::Demux) => Kind::Demux,
        _ => Kind::SysReg,
    }
}

/// `is_timer_reg()`: the three virtual-timer ids, and from 6.4 the physical ones.
fn is_timer(id: u64, release: Release) -> bool {
    matches!(id, TIMER_CTL | TIMER_CNT | TIMER_CVAL)
        || (release.at_least(6, 4) && matches!(id, PTIMER_CTL | PTIMER_CNT | PTIMER_CVAL))
}

// ---------------------------------------------------------------------------------------
// Core registers (guest.c: core_reg_size_from_offset, validate_core_offset, get/set_core_reg)

/// `sizeof(struct kvm_regs) / sizeof(u32)`: user_pt_regs (34 u64), sp_el1, elr_el1,
/// `spsr[5]`, then the 16-byte aligned user_fpsimd_state (32 V registers, fpsr, fpcr, 2
/// reserved words).
pub const CORE_WORDS: u64 = 0xd8;
/// The offset of V0 (u32 units).
pub const CORE_V0: u64 = 0x54;
/// The offset of FPSR; FPCR follows.
pub const CORE_FPSR: u64 = 0xd4;
/// The offset of PSTATE.
pub const CORE_PSTATE: u64 = 0x42;

/// The register size of a core offset (`core_reg_size_from_offset()`), or EINVAL; `sve`:
/// the vCPU has SVE (the V registers are then reached through the Z registers only).
fn core_size(off: u64, sve: bool) -> Result<usize, Errno> {
    let size = match off {
        // regs[0..=30], sp, pc, pstate, sp_el1, elr_el1, spsr[0..=4]: 0x00..=0x50 as u64s.
        0..=0x50 => 8,
        CORE_V0..=0xd0 => 16,
        0xd4 | 0xd5 => 4,
        _ => return Err(Errno::EINVAL),
    };
    let words = u64::try_from(size / 4).unwrap_or(1);
    if off % words != 0 || off + words > if size == 8 { 0x52 } else { CORE_WORDS } {
        return Err(Errno::EINVAL);
    }
    if sve && (CORE_V0..=0xd0).contains(&off) {
        return Err(Errno::EINVAL);
    }
    Ok(size)
}

/// The checks of `get_core_reg()` / `set_core_reg()` before the copy: the offset, the
/// buffer past the end (ENOENT), then the size (EINVAL). The offset on success.
pub fn core_check(id: u64, sve: bool) -> Result<u64, Errno> {
    let r = OneRegId(id);
    // core_reg_offset_from_id(): every bit but the arch, size and class fields.
    let off = id & 0x0000_0000_f000_ffff;
    let words = u64::try_from(r.size_bytes() / 4).unwrap_or(u64::MAX);
    if off >= CORE_WORDS || off.saturating_add(words) >= CORE_WORDS {
        return Err(Errno::ENOENT);
    }
    let size = core_size(off, sve)?;
    if r.size_bytes() != size {
        return Err(Errno::EINVAL);
    }
    Ok(off)
}

/// What `set_core_reg()` accepts for PSTATE: the mode field (`PSR_AA32_MODE_MASK`, 0x1f)
/// must name an AArch64 EL0/EL1 mode, or USR where the host has 32-bit EL0; EL2 modes only
/// with nested virtualisation (not modelled: EINVAL), the AArch32 EL1 modes only on a 32-bit
/// EL1 vCPU (not modelled: EINVAL).
pub fn pstate_ok(value: u64, aarch32_el0: bool) -> bool {
    match value & 0x1f {
        0x0 | 0x4 | 0x5 => true,
        0x10 => aarch32_el0,
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------
// SVE (guest.c: get/set_sve_vls, sve_reg_to_region, get/set_sve_reg)

/// Z0 slice 0 (U2048) and the last Z id of the range `sve_reg_to_region()` accepts.
const ZREG_MIN: u64 = 0x6080_0000_0015_0000;
const ZREG_MAX: u64 = ZREG_MIN | 31 << 5 | 31;
/// P0 slice 0 (U256) and FFR's last slice: P and FFR are one contiguous range.
const PREG_MIN: u64 = 0x6050_0000_0015_0400;
const PREG_MAX: u64 = 0x6050_0000_0015_0600 | 31;

/// An SVE register's place in the vCPU's state: which register and how many bytes of its
/// buffer the vector length keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SveReg {
    /// KVM_REG_ARM64_SVE_VLS.
    Vls,
    /// Z, P or FFR slice 0: the bytes the vector length keeps (the rest reads 0, a write of
    /// it is dropped).
    Data {
        /// Bytes kept for a vector length of `vq` quadwords.
        kept: usize,
    },
}

/// `sve_reg_to_region()`: ENOENT without SVE or for a slice other than 0, EINVAL for an id
/// outside the Z and P/FFR ranges; `vq` is the vCPU's maximum vector length in quadwords.
pub fn sve_reg(id: u64, has_sve: bool, vq: usize) -> Result<SveReg, Errno> {
    if id == SVE_VLS {
        return if has_sve {
            Ok(SveReg::Vls)
        } else {
            Err(Errno::ENOENT)
        };
    }
    let (kept, in_range) = if (ZREG_MIN..=ZREG_MAX).contains(&id) {
        (vq * 16, true)
    } else if (PREG_MIN..=PREG_MAX).contains(&id) {
        (vq * 2, true)
    } else {
        (0, false)
    };
    if !in_range {
        return Err(Errno::EINVAL);
    }
    if !has_sve || id & 0x1f != 0 {
        return Err(Errno::ENOENT);
    }
    Ok(SveReg::Data { kept })
}

/// The vector lengths (in quadwords) of an SVE_VLS buffer.
pub fn vls_lengths(vls: &[u8]) -> Vec<usize> {
    (1..=512)
        .filter(|&vq| {
            let bit = vq - 1;
            vls.get(bit / 8).is_some_and(|b| b >> (bit % 8) & 1 != 0)
        })
        .collect()
}

/// `set_sve_vls()` before finalize: the requested set must be exactly the host's lengths up
/// to its maximum, which must not exceed the host's; EINVAL otherwise. The new maximum.
pub fn sve_vls_check(requested: &[u8], host: &[u8]) -> Result<usize, Errno> {
    let want = vls_lengths(requested);
    let have = vls_lengths(host);
    let max = *want.last().ok_or(Errno::EINVAL)?;
    if have.last().is_none_or(|&h| max > h) {
        return Err(Errno::EINVAL);
    }
    let host_below: Vec<usize> = have.into_iter().filter(|&v| v <= max).collect();
    if host_below != want {
        return Err(Errno::EINVAL);
    }
    Ok(max)
}

// ---------------------------------------------------------------------------------------
// System registers

/// What a system register's SET does, by encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SysRule {
    /// A feature ID register (op0 3, op1 0, CRn 0, CRm 1-7): VM-wide; `set_id_reg()`.
    IdReg,
    /// MIDR_EL1, REVIDR_EL1, AIDR_EL1: invariant, writable behind a capability from 6.15.
    ImpId,
    /// CTR_EL0: invariant before 6.11, an ID register after.
    Ctr,
    /// CLIDR_EL1: invariant before 6.3, `set_clidr()` after.
    Clidr,
    /// PMCR_EL0: `set_pmcr()`.
    Pmcr,
    /// A PMU set/clear pair register (`set_pmreg()`): `set` says whether it sets bits.
    PmuSetClr {
        /// The register holding the bits.
        holder: u64,
        /// Whether a write sets (else clears) the written bits.
        set: bool,
    },
    /// Any other register: the value is stored.
    Plain,
}

/// The rule of the system register `id` on `release`.
pub fn sys_rule(id: u64) -> SysRule {
    let enc = sysreg_encoding(id);
    match enc {
        (3, 0, 0, 0, 0) | (3, 0, 0, 0, 6) | (3, 1, 0, 0, 7) => SysRule::ImpId,
        (3, 3, 0, 0, 1) => SysRule::Ctr,
        (3, 1, 0, 0, 1) => SysRule::Clidr,
        (3, 0, 0, crm, _) if (1..=7).contains(&crm) => SysRule::IdReg,
        (3, 3, 9, 12, 0) => SysRule::Pmcr,
        // PMCNTENSET/CLR_EL0 (op2 1/2), PMOVSCLR_EL0 (12,3) / PMOVSSET_EL0 (14,3),
        // PMINTENSET/CLR_EL1 (3,0,9,14,1/2).
        (3, 3, 9, 12, 1) => pmu_pair(id, true),
        (3, 3, 9, 12, 2) => SysRule::PmuSetClr {
            holder: id - 1,
            set: false,
        },
        (3, 3, 9, 14, 3) => pmu_pair(id, true),
        (3, 3, 9, 12, 3) => SysRule::PmuSetClr {
            holder: crate::abi::vcpu_reg::sysreg_id(3, 3, 9, 14, 3),
            set: false,
        },
        (3, 0, 9, 14, 1) => pmu_pair(id, true),
        (3, 0, 9, 14, 2) => SysRule::PmuSetClr {
            holder: id - 1,
            set: false,
        },
        _ => SysRule::Plain,
    }
}

impl SysRule {
    /// KVM keeps one value for the whole VM (`kvm_set_vm_id_reg()`): the ID registers, the
    /// implementation ids and CTR_EL0, written through any vCPU.
    pub const fn vm_wide(self) -> bool {
        matches!(self, SysRule::IdReg | SysRule::ImpId | SysRule::Ctr)
    }
}

fn pmu_pair(id: u64, set: bool) -> SysRule {
    SysRule::PmuSetClr { holder: id, set }
}

/// KVM's SET rule of `id` on `release`, in one line (what `armfw regs` shows; the rule itself
/// is [`kind`], [`sys_rule`] and the functions of this module).
pub fn describe(id: u64, release: Release) -> &'static str {
    match kind(id, release) {
        Kind::NotArm64 => "not an arm64 id: EINVAL",
        Kind::Firmware => "firmware register (see its row)",
        Kind::Core if id & 0xffff == CORE_PSTATE => {
            "any value whose mode is AArch64 EL0t/EL1t/EL1h (USR with 32-bit EL0), else EINVAL"
        }
        Kind::Core => "any value; EINVAL for a wrong size (V registers: not with SVE)",
        Kind::Sve if id == SVE_VLS => {
            "before finalize: the host's lengths up to a maximum, else EINVAL; after: EPERM"
        }
        Kind::Sve => "after finalize: any value, bits beyond the vector length dropped",
        Kind::Timer if matches!(id, TIMER_CNT | PTIMER_CNT) => {
            "sets the VM's counter offset (ignored after KVM_ARM_SET_COUNTER_OFFSET)"
        }
        Kind::Timer => "any value (CTL: ISTATUS read-only)",
        Kind::Demux if release.at_least(6, 3) => {
            "any value whose line size is at least CTR_EL0's minimum, else EINVAL"
        }
        Kind::Demux => "the host's value only, else EINVAL",
        Kind::SysReg => match sys_rule(id) {
            SysRule::IdReg if release.at_least(6, 7) => {
                "VM-wide; per field within the writable mask by the field's type (lower-safe, higher-safe, exact), other bits the host's, else EINVAL; EBUSY for a change after a run"
            }
            SysRule::IdReg => {
                "the host's value only, else EINVAL (ID_AA64PFR0_EL1: CSV2/CSV3 may be lowered)"
            }
            SysRule::ImpId if release.at_least(6, 15) => {
                "the host's value, or with KVM_CAP_ARM_WRITABLE_IMP_ID_REGS any value in the writable mask before a run"
            }
            SysRule::ImpId => "invariant: the host's value only, else EINVAL",
            SysRule::Ctr if release.at_least(6, 11) => {
                "VM-wide ID register: per field by its type, else EINVAL; EBUSY after a run"
            }
            SysRule::Ctr => "invariant: the host's value only, else EINVAL",
            SysRule::Clidr if release.at_least(6, 3) => {
                "any value without RES0 bits that CTR_EL0.IDC allows, else EINVAL"
            }
            SysRule::Clidr => "invariant: the host's value only, else EINVAL",
            SysRule::Pmcr if release.at_least(6, 7) => {
                "N kept if at most the host's and before a run; bits 7:0 kept; never refused"
            }
            SysRule::PmuSetClr { .. } if release.at_least(6, 7) => {
                "sets or clears the written bits of the VM's counters"
            }
            _ => "any value, stored",
        },
    }
}

/// The invariant registers of `release` (`invariant_sys_regs[]` in sys_regs.c, before
/// 6.15): MIDR_EL1, REVIDR_EL1, AIDR_EL1, and CLIDR_EL1 before 6.3 and CTR_EL0 before 6.11.
fn invariant(encoding: (u8, u8, u8, u8, u8), release: Release) -> bool {
    if release.at_least(6, 15) {
        return false;
    }
    match encoding {
        (3, 0, 0, 0, 0) | (3, 0, 0, 0, 6) | (3, 1, 0, 0, 7) => true,
        (3, 1, 0, 0, 1) => !release.at_least(6, 3),
        (3, 3, 0, 0, 1) => !release.at_least(6, 11),
        _ => false,
    }
}

/// An id of a class KVM does not have that the invariant table answers all the same: before
/// 6.15, `get_reg_by_id()` on the invariant table and `index_to_params()` ignore the class
/// bits, so a 64-bit id of any other class whose index spells an invariant register reads
/// that register (and a SET compares with it). Measured on 6.1 and 6.12 (scenario
/// vcpu_class_quirk); 7.2 answers ENOENT. The system-register id it stands for.
pub fn invariant_alias(id: u64, release: Release) -> Option<u64> {
    let r = OneRegId(id);
    if r.class() == RegClass::SysReg.value() || r.size_bytes() != 8 {
        return None;
    }
    let sys = crate::abi::vcpu_reg::sysreg_id(0, 0, 0, 0, 0) | (id & 0xffff);
    invariant(sysreg_encoding(sys), release).then_some(sys)
}

/// The AArch32 ID registers KVM sanitises (`AA32_ID_SANITISED` in sys_regs.c): on a host
/// without 32-bit EL0 they read 0 and ignore writes (`REG_RAZ | REG_USER_WI`). ID_AFR0_EL1 and
/// ID_DFR1_EL1 (`ID_HIDDEN`) and the unallocated slots are RAZ only: a write of anything but 0
/// is refused. Measured on a64fx with 6.1, 6.12 and 7.2.
pub fn aa32_sanitised(encoding: (u8, u8, u8, u8, u8)) -> bool {
    matches!(
        encoding,
        (3, 0, 0, 1, 0 | 1 | 2 | 4 | 5 | 6 | 7) | (3, 0, 0, 2, _) | (3, 0, 0, 3, 0 | 1 | 2 | 4 | 6)
    )
}

/// `set_clidr()` (6.3+): EINVAL for RES0 bits (63:47) or for a hierarchy that needs
/// CTR_EL0.IDC (LoC 0, or LoUIS and LoUU both 0) on a host whose sanitised CTR_EL0 lacks it
/// (measured on 7.2: the host's CTR_EL0 decides, not a value written to the VM's).
pub fn clidr_set(value: u64, ctr: u64) -> Result<(), Errno> {
    let loc = value >> 24 & 7;
    let louis = value >> 21 & 7;
    let louu = value >> 27 & 7;
    let idc = loc == 0 || (louis == 0 && louu == 0);
    if value >> 47 != 0 || (ctr >> 28 & 1 == 0 && idc) {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// The smallest cache line KVM accepts in a CCSIDR of the data (`icache` false) or
/// instruction cache, as log2 bytes: CTR_EL0.DminLine/IminLine + 2 (log2 words) + 2.
fn min_line(ctr: u64, icache: bool) -> u64 {
    let field = if icache { ctr & 0xf } else { ctr >> 16 & 0xf };
    field + 2
}

/// `set_ccsidr()` (6.3+): EINVAL for a line size below the one CTR_EL0 implies.
pub fn ccsidr_set(csselr: u64, value: u32, ctr: u64) -> Result<(), Errno> {
    let line = u64::from(value & 7) + 4;
    if line < min_line(ctr, csselr & 1 != 0) {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_offsets_follow_struct_kvm_regs() {
        // x0 U64, PC U64, V0 U128, FPSR U32 (api.rst's examples).
        assert_eq!(core_check(0x6030_0000_0010_0000, false), Ok(0));
        assert_eq!(core_check(0x6030_0000_0010_0040, false), Ok(0x40));
        assert_eq!(core_check(0x6040_0000_0010_0054, false), Ok(0x54));
        assert_eq!(core_check(0x6020_0000_0010_00d4, false), Ok(0xd4));
        assert_eq!(core_check(0x6040_0000_0010_0054, true), Err(Errno::EINVAL));
        assert_eq!(core_check(0x6030_0000_0010_0001, false), Err(Errno::EINVAL));
        assert_eq!(core_check(0x6030_0000_0010_0100, false), Err(Errno::ENOENT));
    }

    #[test]
    fn sve_vls_must_be_the_hosts_lengths_up_to_a_maximum() {
        let host = [0b1011u8]; // 128, 256, 512 bits
        assert_eq!(sve_vls_check(&[0b1], &host), Ok(1));
        assert_eq!(sve_vls_check(&[0b11], &host), Ok(2));
        assert_eq!(sve_vls_check(&[0b10], &host), Err(Errno::EINVAL));
        assert_eq!(sve_vls_check(&[0b1011], &host), Ok(4));
        assert_eq!(sve_vls_check(&[0], &host), Err(Errno::EINVAL));
    }
}
