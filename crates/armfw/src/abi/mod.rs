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
pub mod function;
pub mod psci;
pub mod reg;
pub mod smccc;

pub use errno::Errno;
pub use function::{Function, Service};
pub use psci::{Mpidr, PsciVersion};
pub use reg::{FwReg, OneRegId};
pub use smccc::FunctionId;
