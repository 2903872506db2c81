// SPDX-License-Identifier: Apache-2.0 OR MIT
//! `armfw-vmm`: boots an arm64 Linux guest on KVM (see the library documentation). As PID 1
//! of an emulated host it runs the plan on the kernel command line.
#![forbid(unsafe_code)]

use std::process::ExitCode;

#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
fn main() -> ExitCode {
    if armfw_kvm::init::is_pid1() {
        armfw_vmm::pid1::main()
    } else {
        armfw_vmm::cli::main()
    }
}

#[cfg(not(all(target_os = "linux", target_arch = "aarch64")))]
fn main() -> ExitCode {
    eprintln!("armfw-vmm runs on Linux/aarch64 only: it needs an arm64 host's /dev/kvm");
    ExitCode::from(2)
}
