//! The Arm architecture calls KVM answers after the fast path (Linux `hypercalls.c`):
//! SMCCC_VERSION and SMCCC_ARCH_FEATURES.

use super::ret1;
use crate::abi::reg::{
    KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_1_AVAIL, KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_1_NOT_REQUIRED,
    KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_NOT_REQUIRED,
};
use crate::abi::reg_u32;
use crate::abi::smccc::{
    ARM_SMCCC_VERSION_1_1, SMCCC_ARCH_WORKAROUND_RET_UNAFFECTED, SMCCC_RET_NOT_REQUIRED,
    SMCCC_RET_NOT_SUPPORTED, SMCCC_RET_SUCCESS,
};
use crate::abi::{Function, FunctionId, FwReg};
use crate::firmware::Vm;

impl Vm {
    /// An architecture call the gate let through.
    pub(super) fn arch_call(&self, f: Function, x: &[u64; 18]) -> [u64; 4] {
        match f {
            Function::SmcccVersion => ret1(ARM_SMCCC_VERSION_1_1.into()),
            // KVM reads the queried id as a u32 (`smccc_get_arg1()` truncated).
            Function::SmcccArchFeatures => ret1(self.arch_features(FunctionId(reg_u32(x[1])))),
            // The gate lets no other architecture call through.
            _ => ret1(SMCCC_RET_NOT_SUPPORTED),
        }
    }

    /// SMCCC_ARCH_FEATURES: the answer for `feature`, from the host levels.
    fn arch_features(&self, feature: FunctionId) -> i64 {
        let wa1_style = |level: u64| match level {
            KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_1_AVAIL => SMCCC_RET_SUCCESS,
            KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_1_NOT_REQUIRED => {
                SMCCC_ARCH_WORKAROUND_RET_UNAFFECTED
            }
            _ => SMCCC_RET_NOT_SUPPORTED,
        };
        match feature.known() {
            Some(Function::SmcccArchWorkaround1) => {
                wa1_style(self.host_level(FwReg::SmcccArchWorkaround1))
            }
            Some(Function::SmcccArchWorkaround3) => {
                wa1_style(self.host_level(FwReg::SmcccArchWorkaround3))
            }
            Some(Function::SmcccArchWorkaround2) => {
                if self.host_level(FwReg::SmcccArchWorkaround2)
                    == KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_NOT_REQUIRED
                {
                    SMCCC_RET_NOT_REQUIRED
                } else {
                    SMCCC_RET_NOT_SUPPORTED
                }
            }
            // PV time is advertised here while its bitmap bit is set.
            Some(f @ Function::PvTimeFeatures) if self.gate_allows(f.info().gate) => {
                SMCCC_RET_SUCCESS
            }
            _ => SMCCC_RET_NOT_SUPPORTED,
        }
    }
}
