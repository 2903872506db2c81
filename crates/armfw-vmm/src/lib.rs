// SPDX-License-Identifier: Apache-2.0 OR MIT
//! `armfw-vmm`: a minimal arm64 VMM that boots a real Linux guest on KVM, with KVM's
//! in-kernel PSCI/SMCCC firmware or with armfw's engine answering those calls in userspace
//! (through the SMCCC filter, Linux 6.4 and later).
//!
//! The machine: N vCPUs, RAM at 0x4000_0000, KVM's in-kernel vGICv3 and arch timer, a
//! 16550A console, a device tree with a `psci` node (method `hvc`) and one PSCI-enabled
//! `cpu` node per vCPU, an initramfs. See docs/linux-guest.md.
//!
//! The parts that need no KVM build and are tested on every target: the address map
//! ([`layout`]), the Image header ([`image`]), the device tree ([`fdt`]), the UART
//! ([`uart`]), the console lines ([`console`]), the run plan ([`plan`]), the results
//! ([`report`]) and their checks ([`checks`]). The VMM itself (`vmm`), its command line
//! and its PID-1 mode are Linux/aarch64 only.
//!
//! The crate forbids `unsafe_code`: guest RAM is registered through `armfw_kvm::memory`, and every other
//! ioctl goes through kvm-ioctls' or armfw-kvm's safe wrappers.
#![forbid(unsafe_code)]

pub mod checks;
pub mod console;
pub mod fdt;
pub mod image;
pub mod layout;
pub mod movecheck;
pub mod plan;
pub mod report;
pub mod uart;

#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
pub mod cli;
#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
mod migrate;
#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
pub mod pid1;
#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
pub mod pid1_migrate;
#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
pub mod vmm;
