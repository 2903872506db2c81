// SPDX-License-Identifier: Apache-2.0 OR MIT
//! `armfw-harness` as PID 1 of an emulated host: mount the pseudo file systems, run the
//! program `armfw.mode=` names on the kernel command line, power off.
//!
//! - no `armfw.mode`: the conformance harness on the initramfs's scenarios
//!   (`/armfw/scenarios`), with the swap test if `armfw.firmware=armfw`;
//! - `probe`, `save`, `restore`: the real-migration harness, inputs under `/armfw`;
//! - `smoke`: the smoke program;
//! - `qemu-save`, `qemu-load`: Debian's QEMU as the KVM client (conformance/qemu).

use std::path::Path;
use std::process::ExitCode;

use armfw_kvm::init;

/// Where the harness puts the scenario sets in the initramfs.
const INITRAMFS_SCENARIOS: &str = "/armfw/scenarios";

/// PID 1's whole life.
pub fn main() -> ExitCode {
    if let Err((what, e)) = init::mount_pseudo_filesystems() {
        println!("armfw-harness: cannot mount {what}: {e}");
    }
    // Closing a VM costs seconds under emulation; the host powers off right after.
    armfw_kvm::set_leak_on_drop(true);
    let ok = match init::cmdline_value("armfw.mode").as_deref() {
        None => {
            let swap = init::cmdline_value("armfw.firmware").as_deref() == Some("armfw");
            crate::conformance::guest(Path::new(INITRAMFS_SCENARIOS), swap) == ExitCode::SUCCESS
        }
        Some("smoke") => {
            crate::smoke::main(true);
            true
        }
        Some(mode @ ("qemu-save" | "qemu-load")) => crate::qemu_client::guest(mode),
        Some(mode) => crate::migrations::guest(mode, Path::new("/armfw")),
    };
    let e = init::power_off();
    println!("armfw-harness: power off failed: {e}");
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
