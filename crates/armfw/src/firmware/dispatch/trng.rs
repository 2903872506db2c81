//! TRNG (Arm DEN0098; Linux `trng.c`).

use super::ret1;
use crate::abi::function::Service;
use crate::abi::reg_u32;
use crate::abi::smccc::{
    ARM_SMCCC_TRNG_UUID_WORDS, ARM_SMCCC_TRNG_VERSION_1_0, SMCCC_RET_NOT_SUPPORTED,
    TRNG_INVALID_PARAMETER, TRNG_SUCCESS,
};
use crate::abi::{Function, FunctionId};
use crate::firmware::Services;

/// `kvm_trng_call()`.
pub(super) fn call(f: Function, x: &[u64; 18], services: &mut dyn Services) -> [u64; 4] {
    match f {
        Function::TrngVersion => ret1(ARM_SMCCC_TRNG_VERSION_1_0.into()),
        Function::TrngFeatures => {
            // The queried id is compared as a full 64-bit value: an id with any upper bit set
            // is not a TRNG function.
            let known = u32::try_from(x[1])
                .ok()
                .and_then(|q| FunctionId(q).known())
                .is_some_and(|q| q.service() == Service::Trng);
            ret1(if known {
                TRNG_SUCCESS
            } else {
                SMCCC_RET_NOT_SUPPORTED
            })
        }
        Function::TrngGetUuid => ARM_SMCCC_TRNG_UUID_WORDS.map(u64::from),
        Function::TrngRnd32 | Function::TrngRnd64 => rnd(f == Function::TrngRnd64, x, services),
        _ => ret1(SMCCC_RET_NOT_SUPPORTED),
    }
}

/// TRNG_RND: up to 96 bits (SMC32) or 192 bits (SMC64), the count read as a u32.
fn rnd(wide: bool, x: &[u64; 18], services: &mut dyn Services) -> [u64; 4] {
    let max_bits: u32 = if wide { 192 } else { 96 };
    let bits = reg_u32(x[1]);
    if bits > max_bits {
        return ret1(TRNG_INVALID_PARAMETER);
    }
    // bits[0] holds bits 63:0, bits[1] 127:64, bits[2] 191:128; only as many words as
    // needed are drawn, and the bits above the request are cleared.
    let mut words = [0u64; 3];
    for (w, low) in words.iter_mut().zip([0u32, 64, 128]) {
        if bits > low {
            let r = services.random_u64();
            let keep = bits - low;
            *w = if keep >= 64 {
                r
            } else {
                r & ((1u64 << keep) - 1)
            };
        }
    }
    if wide {
        [TRNG_SUCCESS as u64, words[2], words[1], words[0]]
    } else {
        [
            TRNG_SUCCESS as u64,
            words[1] & 0xffff_ffff,
            words[0] >> 32,
            words[0] & 0xffff_ffff,
        ]
    }
}
