//! The strict policy's outcome on a destination, predicted with the register table's SET
//! rules (the ones the model executes).

use super::StrictOutcome;
use crate::abi::{Errno, FwReg};
use crate::profile::Profile;
use crate::register::{self, SetContext};
use crate::snapshot::{Snapshot, Step};

/// What KVM on `dest` answers to SET_ONE_REG(`id`, `value`) on a fresh VM's vCPU (one whose
/// ID_AA64PFR1_EL1 hides the host's SSBS where `ssbs_hidden`): the id checks of
/// [`crate::Firmware::set_one_reg`], then the register table's rule.
pub(super) fn strict_set(
    dest: &Profile,
    psci_0_2: bool,
    id: u64,
    value: u64,
    ssbs_hidden: bool,
) -> Result<(), Errno> {
    let unknown = dest.rules().unknown_fw_reg_errno();
    let reg = FwReg::from_id(id)
        .filter(|r| dest.register(*r).is_some())
        .ok_or(unknown)?;
    let ctx = SetContext {
        psci_0_2,
        has_run: false,
        current: dest.register(reg).map_or(0, |r| r.default),
        ssbs_hidden,
    };
    register::firmware(reg)
        .rule
        .set(reg, dest, ctx, value)
        .map(|_| ())
}

/// The strict policy on a fresh destination VM: the capability, vCPU 0's init, the filter
/// ranges, then vCPU 0's registers in saved order (every vCPU gets the same values, so the
/// first refusal is on vCPU 0).
pub(super) fn predict_strict(
    snapshot: &Snapshot,
    saved: &[crate::snapshot::SavedReg],
    dest: &Profile,
) -> StrictOutcome {
    let fail = |step, errno| StrictOutcome::Fails { step, errno };
    if snapshot.vm.system_suspend && !dest.capabilities().system_suspend {
        return fail(Step::EnableSystemSuspend, Errno::EINVAL);
    }
    if snapshot.vm.psci_0_2 && !dest.capabilities().psci_0_2 {
        return fail(Step::InitVcpu { vcpu: 0 }, Errno::EINVAL);
    }
    if !snapshot.vm.smccc_filter.is_empty() && !dest.capabilities().smccc_filter {
        return fail(Step::SetSmcccFilter { range: 0 }, Errno::EINVAL);
    }
    // In saved order the firmware registers come before the ID registers: KVM judges them
    // against the destination's own VM (its SSBS shown).
    for r in saved {
        if let Err(errno) = strict_set(dest, snapshot.vm.psci_0_2, r.id, r.value, false) {
            return fail(Step::SetOneReg { vcpu: 0, id: r.id }, errno);
        }
    }
    StrictOutcome::Ok
}
