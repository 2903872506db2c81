//! KVM's vendor hypervisor service (Linux `hypercalls.c`, `ptp_kvm`): CALL_UID,
//! KVM_FEATURES and PTP.

use super::ret1;
use crate::abi::reg_u32;
use crate::abi::smccc::{
    ARM_SMCCC_VENDOR_HYP_UID_KVM_WORDS, KVM_PTP_PHYS_COUNTER, KVM_PTP_VIRT_COUNTER,
    SMCCC_RET_INVALID_PARAMETER, SMCCC_RET_NOT_SUPPORTED,
};

/// The DISCOVER_IMPL ABI version this firmware answers: 1.0 (major in bits 31:16).
const DISCOVER_IMPL_VERSION: u64 = 1 << 16;
use crate::abi::{Function, FwReg};
use crate::firmware::{PtpCounter, Services, Vm};

impl Vm {
    /// A vendor hypervisor call the gate let through.
    pub(super) fn vendor_call(
        &self,
        f: Function,
        x: &[u64; 18],
        services: &mut dyn Services,
    ) -> [u64; 4] {
        match f {
            Function::VendorHypCallUid => ARM_SMCCC_VENDOR_HYP_UID_KVM_WORDS.map(u64::from),
            Function::KvmFeatures => [
                self.bitmap(FwReg::VendorHypBmap),
                0,
                self.bitmap(FwReg::VendorHypBmap2),
                0,
            ],
            Function::KvmPtp => {
                // KVM reads the counter selector as a u32.
                let counter = match reg_u32(x[1]) {
                    KVM_PTP_VIRT_COUNTER => Some(PtpCounter::Virtual),
                    KVM_PTP_PHYS_COUNTER => Some(PtpCounter::Physical),
                    _ => None,
                };
                match counter.and_then(|c| services.ptp_time(c)) {
                    Some(t) => [
                        t.realtime_ns >> 32,
                        t.realtime_ns & 0xffff_ffff,
                        t.counter >> 32,
                        t.counter & 0xffff_ffff,
                    ],
                    None => ret1(SMCCC_RET_NOT_SUPPORTED),
                }
            }
            // DISCOVER_IMPL_VER: version 1.0 and the number of implementations (the gate
            // lets it through only when the VMM gave them).
            Function::KvmDiscoverImplVer => [
                0,
                DISCOVER_IMPL_VERSION,
                u64::try_from(self.implementations.len()).unwrap_or(u64::MAX),
                0,
            ],
            // DISCOVER_IMPL_CPUS: the implementation at index x1, or INVALID_PARAMETER.
            Function::KvmDiscoverImplCpus => {
                let i = usize::try_from(x[1]).ok();
                match i.and_then(|i| self.implementations.get(i)) {
                    Some(imp) => [0, imp.midr, imp.revidr, imp.aidr],
                    None => ret1(SMCCC_RET_INVALID_PARAMETER),
                }
            }
            // The gate lets no other vendor call through.
            _ => ret1(SMCCC_RET_NOT_SUPPORTED),
        }
    }
}
