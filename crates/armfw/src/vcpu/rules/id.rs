//! The ID registers' SET rules (`set_id_reg()`, `arm64_check_features()` and the
//! registers' own `set_user` checks in `arch/arm64/kvm/sys_regs.c`), per release, and the
//! implementation ids' (`set_imp_id_reg()`).

use crate::abi::Errno;
use crate::register::ftr;
use crate::release::Release;

/// What an ID-register check needs of the VM.
#[derive(Clone, Copy, Debug)]
pub struct IdCheck {
    /// The release.
    pub release: Release,
    /// The register's value on a fresh vCPU (KVM's `limit`, `rd->reset()`).
    pub limit: u64,
    /// The VM's current value.
    pub current: u64,
    /// The writable mask (6.7+), 0 where the probe saw none.
    pub writable: u64,
    /// The bits of the fields that lie wholly inside the writable mask ([`checked_fields`]).
    pub checked: u64,
    /// A vCPU of the VM has run.
    pub has_run: bool,
    /// The register reads as zero (unallocated, or hidden for the vCPU's features).
    pub raz: bool,
    /// Writes are ignored (AArch32 ID registers on a host without 32-bit EL0).
    pub write_ignored: bool,
    /// The kernel's field table of the register (`get_arm64_ftr_reg()`), if it has one.
    pub fields: Option<&'static ftr::FtrReg>,
    /// The register's own `set_user` checks ([`IdSpecial::of`] its encoding).
    pub special: IdSpecial,
}

/// The ID registers whose `set_user` makes checks of its own before `set_id_reg()`
/// (before [`id_set`] judges the fields), decided once per register from its encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdSpecial {
    /// `set_id_reg()` alone.
    None,
    /// ID_AA64PFR0_EL1 (`set_id_aa64pfr0_el1()`).
    Pfr0,
    /// ID_AA64DFR0_EL1 (`set_id_aa64dfr0_el1()`).
    Dfr0,
    /// ID_DFR0_EL1 (`set_id_dfr0_el1()`).
    Aa32Dfr0,
}

impl IdSpecial {
    /// The special checks of the register at `encoding`.
    #[must_use]
    pub const fn of(encoding: (u8, u8, u8, u8, u8)) -> IdSpecial {
        match encoding {
            (3, 0, 0, 4, 0) => IdSpecial::Pfr0,
            (3, 0, 0, 5, 0) => IdSpecial::Dfr0,
            (3, 0, 0, 1, 2) => IdSpecial::Aa32Dfr0,
            _ => IdSpecial::None,
        }
    }
}

/// The per-register `set_user` checks KVM makes before `set_id_reg()` (6.7 and later,
/// `sys_regs.c`): the value to check and store, or EINVAL.
///
/// - ID_AA64PFR0_EL1 (`set_id_aa64pfr0_el1()`): an MPAM field equal to the host's is
///   dropped; from 6.15 (measured: not in 6.12, in 7.2) EL0 or EL1 = 0 ("disable the AA64
///   ISA") is EINVAL.
/// - ID_AA64DFR0_EL1 (`set_id_aa64dfr0_el1()`): PMUVer IMP_DEF (0xf) becomes 0; DebugVer
///   below 6 (Armv8) is EINVAL.
/// - ID_DFR0_EL1 (`set_id_dfr0_el1()`): PerfMon IMP_DEF (0xf) becomes 0; PerfMon 1 or 2
///   (below PMUv3) and CopDbg below 6 are EINVAL.
fn id_pre_check(c: &IdCheck, value: u64) -> Result<u64, Errno> {
    let field = |v: u64, shift: u32| v >> shift & 0xf;
    let mut v = value;
    match c.special {
        IdSpecial::Pfr0 => {
            const MPAM: u64 = 0xf << 40;
            if value & MPAM == c.limit & MPAM {
                v &= !MPAM;
            }
            if c.release.at_least(6, 15) && (field(v, 0) == 0 || field(v, 4) == 0) {
                return Err(Errno::EINVAL);
            }
        }
        IdSpecial::Dfr0 => {
            if field(v, 8) == 0xf {
                v &= !(0xf << 8);
            }
            if field(v, 0) < 6 {
                return Err(Errno::EINVAL);
            }
        }
        IdSpecial::Aa32Dfr0 => {
            if field(v, 24) == 0xf {
                v &= !(0xf << 24);
            }
            let perfmon = field(v, 24);
            if (perfmon != 0 && perfmon < 3) || field(v, 0) < 6 {
                return Err(Errno::EINVAL);
            }
        }
        IdSpecial::None => {}
    }
    Ok(v)
}

/// Whether an ID-register write of `value` passes every check of 6.7 and later because it
/// is the host's own value `limit`, written before the VM runs (a restore onto the same kind
/// of host): what [`id_set`] tests first, which the model also tests before it assembles the
/// rest of the check.
#[inline]
pub fn takes_host_value(release: Release, has_run: bool, limit: u64, value: u64) -> bool {
    release.at_least(6, 7) && !has_run && value == limit
}

/// `set_id_reg()` of the register at `encoding` with `value` (after the register's own
/// `set_user` checks): the value KVM stores (the caller stores it VM-wide), or the errno.
#[inline(always)]
pub fn id_set(c: &IdCheck, value: u64) -> Result<u64, Errno> {
    if c.write_ignored {
        return Ok(c.current);
    }
    if !c.release.at_least(6, 7) {
        return id_set_pre_6_7(c, value).map(|()| value);
    }
    if takes_host_value(c.release, c.has_run, c.limit, value) {
        return Ok(value);
    }
    let value = if c.has_run {
        value
    } else {
        id_pre_check(c, value)?
    };
    id_check_features(c, value).map(|()| value)
}

/// The bits of the fields of `fields` that lie wholly inside `writable`: the `mask` that
/// `arm64_check_features()` builds; bits outside it must equal the host's.
#[must_use]
pub fn checked_fields(fields: Option<&ftr::FtrReg>, writable: u64) -> u64 {
    fields.map_or(0, |reg| {
        reg.fields
            .iter()
            .map(ftr::field_mask)
            .filter(|&fm| fm & writable == fm)
            .fold(0, |acc, fm| acc | fm)
    })
}

/// The has-run rule and `arm64_check_features()` (6.7+).
#[inline(always)]
fn id_check_features(c: &IdCheck, value: u64) -> Result<(), Errno> {
    if c.has_run {
        return if value == c.current {
            Ok(())
        } else {
            Err(Errno::EBUSY)
        };
    }
    // arm64_check_features(); its E2BIG becomes EINVAL in set_id_reg().
    if c.raz {
        return if value == 0 {
            Ok(())
        } else {
            Err(Errno::EINVAL)
        };
    }
    let Some(reg) = c.fields else {
        return Err(Errno::EINVAL);
    };
    // The kernel walks every field and then compares the bits outside the checked fields
    // with the host's; the same answer comes from doing that comparison first and judging
    // only the fields with a changed bit (an unchanged field passes: f_val == f_lim). The
    // fields are disjoint, so a changed bit inside `checked` lies in a checked field.
    let changed = value ^ c.limit;
    if changed & !c.checked != 0 {
        return Err(Errno::EINVAL);
    }
    // Walk the changed bits, lowest first; the field of each is one load in the table's
    // bit → field index (derived from the same fields). The fields are disjoint, so a
    // field is judged once.
    let mut rest = changed;
    while rest != 0 {
        let bit = rest.trailing_zeros();
        let Some(f) = reg.field_at(bit) else {
            return Err(Errno::EINVAL);
        };
        let fm = ftr::field_mask(f);
        rest &= !fm;
        let v = ftr::field_value(f, value);
        let lim = ftr::field_value(f, c.limit);
        if ftr::safe_value_as(ftr::kvm_kind(reg.encoding, f), f, v, lim) != v {
            return Err(Errno::EINVAL);
        }
    }
    Ok(())
}

/// Before 6.7 (`set_id_reg()` / `__set_id_reg()`): any value other than the current one is
/// EINVAL, except ID_AA64PFR0_EL1.CSV2/CSV3 (`set_id_aa64pfr0_el1()`), which may be 0 or,
/// where the host is unaffected (its value is 1), 1.
fn id_set_pre_6_7(c: &IdCheck, value: u64) -> Result<(), Errno> {
    if c.special == IdSpecial::Pfr0 {
        const CSV: u64 = 0xff << 56;
        let csv2 = value >> 56 & 0xf;
        let csv3 = value >> 60 & 0xf;
        let host2 = c.limit >> 56 & 0xf;
        let host3 = c.limit >> 60 & 0xf;
        if csv2 > 1 || (csv2 != 0 && host2 == 0) || csv3 > 1 || (csv3 != 0 && host3 == 0) {
            return Err(Errno::EINVAL);
        }
        if (value ^ c.current) & !CSV != 0 {
            return Err(Errno::EINVAL);
        }
        return Ok(());
    }
    if value == c.current {
        Ok(())
    } else {
        Err(Errno::EINVAL)
    }
}

/// MIDR_EL1 / REVIDR_EL1 / AIDR_EL1: the same value is always accepted; a different one
/// only on 6.15+ with KVM_CAP_ARM_WRITABLE_IMP_ID_REGS enabled, within the writable mask,
/// before the VM has run (`set_imp_id_reg()`).
pub fn imp_set(c: &IdCheck, cap_enabled: bool, value: u64) -> Result<(), Errno> {
    if value == c.current {
        return Ok(());
    }
    if !cap_enabled || !c.release.at_least(6, 15) {
        return Err(Errno::EINVAL);
    }
    if c.has_run {
        return Err(Errno::EBUSY);
    }
    if value & !c.writable != 0 {
        return Err(Errno::EINVAL);
    }
    Ok(())
}
