//! Paravirtualised time (Arm DEN0057A; Linux `pvtime.c`): PV_TIME_FEATURES and PV_TIME_ST.

use super::{resume, ret1};
use crate::abi::reg_u32;
use crate::abi::smccc::{SMCCC_RET_NOT_SUPPORTED, SMCCC_RET_SUCCESS};
use crate::abi::{Function, FunctionId};
use crate::firmware::{Action, CallOutcome, Caller};

/// A PV time call the gate let through (`kvm_hypercall_pv_features()`,
/// `kvm_init_stolen_time()`): both need the caller's stolen-time IPA.
pub(super) fn call(f: Function, x: &[u64; 18], caller: Caller) -> CallOutcome {
    match f {
        Function::PvTimeFeatures => {
            // The queried id is read as a u32.
            let queried = FunctionId(reg_u32(x[1])).known();
            let ok = matches!(queried, Some(Function::PvTimeFeatures | Function::PvTimeSt))
                && caller.steal_ipa.is_some();
            resume(ret1(if ok {
                SMCCC_RET_SUCCESS
            } else {
                SMCCC_RET_NOT_SUPPORTED
            }))
        }
        Function::PvTimeSt => match caller.steal_ipa {
            Some(ipa) => CallOutcome {
                x: [ipa, 0, 0, 0],
                action: Action::InitStolenTime { ipa },
            },
            None => resume(ret1(SMCCC_RET_NOT_SUPPORTED)),
        },
        _ => resume(ret1(SMCCC_RET_NOT_SUPPORTED)),
    }
}
