//! # armfw: Linux KVM's arm64 guest firmware, exactly, in a library
//!
//! Every arm64 KVM guest gets a "firmware" from the kernel: PSCI 0.1–1.3 for power management
//! and the SMCCC services (VERSION, ARCH_FEATURES, the Spectre workaround calls, TRNG,
//! paravirtualised time, KVM's vendor calls). Userspace sees and pins that firmware through
//! the firmware pseudo-registers (`KVM_REG_ARM_PSCI_VERSION`, the WORKAROUND levels, the
//! service bitmaps). This crate models all of it, per kernel release and host:
//!
//! - [`abi`]: function ids, return codes, PSCI versions, MPIDR, ONE_REG ids, errnos.
//! - [`firmware`]: the engine, one [`Firmware`] per VM: guest calls in, what the VMM must do
//!   out; the firmware registers with KVM's errnos; the SMCCC filter; [`firmware::shared`]
//!   for a VMM with one thread per vCPU.
//! - [`register`]: the register table, one descriptor per register: every register fact.
//! - [`profile`]: what one host offers ([`Profile`], JSON), and the built-in hosts.
//! - [`release`]: the rules that changed between kernel releases.
//! - [`scenario`]: the scenario contract, shared by the model and real-KVM backends.
//! - [`snapshot`]: a VM's firmware state, saved, loaded from untrusted bytes, restored
//!   atomically.
//! - [`migrate`]: the one save/restore sequence (model and real vCPUs), restore policies,
//!   baseline application.
//! - [`compat`]: whether a snapshot can move to another host, armfw's restore plan, the
//!   strict restore's predicted outcome, and pool baselines.
//! - [`qemu`]: QEMU's migration stream, read for its vCPUs' registers.
//! - [`json`]: how every JSON file format is read and written: field paths in errors,
//!   unknown and duplicate keys refused, one number rule.
//!
//! The crate is sans-IO: no I/O, threads, clock or logging; randomness and time come from
//! the caller ([`firmware::Services`]). The same inputs always give the same answers.
//!
//! ```
//! use armfw::firmware::{Action, Call, Conduit, Firmware, VcpuFeatures};
//! use armfw::scenario::ModelServices;
//!
//! let host = armfw::profile::builtin_named("linux-6.12.117-max").unwrap();
//! let mut fw = Firmware::new(&host);
//! for (i, power_off) in [false, true].into_iter().enumerate() {
//!     fw.add_vcpu().unwrap();
//!     fw.init_vcpu(i, VcpuFeatures { psci_0_2: true, power_off }).unwrap();
//! }
//! fw.vcpu_run(0).unwrap();
//! // vCPU 0 calls CPU_ON(target MPIDR 1, entry 0x4000_1000, context 0x55).
//! let call = Call::new(Conduit::Hvc, [0xc400_0003, 1, 0x4000_1000, 0x55]);
//! let out = fw.handle_call(0, &call, &mut ModelServices::default()).unwrap();
//! assert_eq!(out.x[0], 0); // PSCI SUCCESS
//! let Action::StartVcpu(start) = out.action else { panic!("CPU_ON starts a vCPU") };
//! assert_eq!((start.vcpu, start.entry, start.context_id), (1, 0x4000_1000, 0x55));
//! ```
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![forbid(unsafe_code)]

pub mod abi;
pub mod bundle;
pub mod catalog;
pub mod compat;
pub mod firmware;
pub mod json;
pub mod migrate;
pub mod profile;
pub mod qemu;
pub mod register;
pub mod release;
pub mod scenario;
pub mod snapshot;
#[cfg(test)]
mod test_support;
pub mod vcpu;

pub use firmware::Firmware;
pub use json::FieldError;
pub use profile::Profile;
pub use snapshot::Snapshot;
