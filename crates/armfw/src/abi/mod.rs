//! Wire-level values of the firmware ABI: function ids (one table of the known functions:
//! [`function`]), return codes, versions, affinities,
//! ONE_REG ids and errnos.
//!
//! Every constant keeps the spelling of the kernel or the specification it comes from, so that
//! code, kernel and spec can be searched for the same name. Sources:
//! - SMCCC: Arm DEN0028 (SMC Calling Convention); Linux `include/linux/arm-smccc.h`.
//! - PSCI: Arm DEN0022 (PSCI 1.3, issue F.b); Linux `include/uapi/linux/psci.h`; KVM's 0.1 ids from
//!   `arch/arm64/include/uapi/asm/kvm.h`.
//! - TRNG: Arm DEN0098. PV time: Arm DEN0057A.
//! - Firmware pseudo-registers: Linux `Documentation/virt/kvm/arm/fw-pseudo-registers.rst`
//!   and `arch/arm64/include/uapi/asm/kvm.h`.

pub mod errno;
pub mod feature;
pub mod function;
pub mod psci;
pub mod reg;
pub mod smccc;
pub mod vcpu_reg;

pub use errno::Errno;
pub use feature::{CpuFeature, CpuFeatures};
pub use function::{Function, Service};
pub use psci::{Mpidr, PsciVersion};
pub use reg::{FwReg, OneRegId};
pub use smccc::FunctionId;

/// The low 32 bits of a guest register, as KVM reads a 32-bit argument.
///
/// SMC32 calls and the 32-bit arguments of SMC64 calls (a function id in `x0`, a PSCI
/// reset type, a TRNG bit count, ...) are read by KVM as `u32` with the upper half ignored
/// (`smccc_get_arg1(vcpu)` stored into a `u32`, `lower_32_bits(...)`); this is the one place
/// that narrowing happens.
pub const fn reg_u32(x: u64) -> u32 {
    #[expect(
        clippy::cast_possible_truncation,
        reason = "dropping the upper half is the point: KVM reads the argument as u32"
    )]
    let low = x as u32;
    low
}
