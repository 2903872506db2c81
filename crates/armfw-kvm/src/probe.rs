//! `armfw probe`: this host's profile, read from the running kernel with scratch VMs.

use armfw::abi::{FwReg, OneRegId, PsciVersion};
use armfw::profile::{Capabilities, Profile, ProfileParts, ProfileReg};
use armfw::release::Release;

use crate::error::sys;
use crate::{Error, TestVm, VmSpec, check_extension, kernel_release};

/// The CPU model the host was started with, from the kernel command line (`armfw.cpu=MODEL`);
/// an emulated host cannot tell it from inside.
pub fn cpu_from_cmdline() -> Option<String> {
    crate::init::cmdline_value("armfw.cpu")
}

/// The kernel's version string (`uname -v`).
pub fn kernel_version() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/version")
        .ok()
        .map(|s| s.trim().to_string())
}

/// `major.minor.patch` of the running kernel: from Debian's version string where the release
/// string lacks the patch level (`6.1.0-37-arm64` is Debian's 6.1.140), else from the release.
pub fn short_version(release: &str, version: Option<&str>) -> String {
    let debian = version
        .and_then(|v| v.split("Debian ").nth(1))
        .and_then(|v| v.split(['-', ' ']).next());
    match (debian.and_then(Release::parse), Release::parse(release)) {
        (Some(d), Some(r)) if d.major == r.major && d.minor == r.minor => d.to_string(),
        (_, Some(r)) => r.to_string(),
        _ => release.to_string(),
    }
}

/// Probe the running kernel: the firmware registers of a fresh VM with their values, the PSCI
/// versions SET accepts, the bits each bitmap accepts, and the capabilities.
pub fn probe(cpu: Option<&str>, name: Option<&str>) -> Result<Profile, Error> {
    let release = kernel_release().map_err(sys("uname"))?;
    let version = kernel_version();
    let cpu = cpu
        .map(str::to_string)
        .or_else(cpu_from_cmdline)
        .unwrap_or_else(|| "unknown".into());
    let vm = TestVm::new(&VmSpec {
        vcpus: 1,
        psci_0_2: true,
        power_off: Vec::new(),
        system_suspend: false,
    })?;
    let ids = vm.reg_list(0).map_err(sys("KVM_GET_REG_LIST"))?;
    let mut registers = Vec::new();
    for id in ids
        .into_iter()
        .filter(|&id| OneRegId(id).is_firmware_class())
    {
        let Some(reg) = FwReg::from_id(id) else {
            continue;
        };
        let default = vm.get_u64(0, id).map_err(sys("KVM_GET_ONE_REG"))?;
        let writable = if reg.is_bitmap() {
            let mut mask = 0u64;
            for bit in 0..64 {
                if vm.set_one_reg(0, id, &(1u64 << bit).to_le_bytes()).is_ok() {
                    mask |= 1 << bit;
                }
            }
            vm.set_one_reg(0, id, &default.to_le_bytes())
                .map_err(sys("KVM_SET_ONE_REG"))?;
            Some(mask)
        } else {
            None
        };
        registers.push(ProfileReg {
            reg,
            default,
            writable,
        });
    }
    let psci_id = FwReg::PsciVersion.id();
    let psci_default = vm.get_u64(0, psci_id).map_err(sys("KVM_GET_ONE_REG"))?;
    let psci_versions: Vec<PsciVersion> = PsciVersion::KVM_ALL
        .into_iter()
        .filter(|v| {
            vm.set_one_reg(0, psci_id, &u64::from(v.0).to_le_bytes())
                .is_ok()
        })
        .collect();
    vm.set_one_reg(0, psci_id, &psci_default.to_le_bytes())
        .map_err(sys("KVM_SET_ONE_REG"))?;
    let capabilities = Capabilities {
        psci_0_2: check_extension(kvm_bindings::KVM_CAP_ARM_PSCI_0_2)
            .map_err(sys("KVM_CHECK_EXTENSION"))?
            > 0,
        system_suspend: check_extension(kvm_bindings::KVM_CAP_ARM_SYSTEM_SUSPEND)
            .map_err(sys("KVM_CHECK_EXTENSION"))?
            > 0,
        smccc_filter: vm.has_smccc_filter().is_ok(),
    };
    vm.leak();
    let short = short_version(&release, version.as_deref());
    let parts = ProfileParts {
        name: name.map_or_else(|| format!("linux-{short}-{cpu}"), str::to_string),
        kernel: release,
        kernel_version: version,
        cpu,
        source: format!("probed by armfw {}", env!("CARGO_PKG_VERSION")),
        registers,
        psci_versions,
        capabilities,
    };
    let profile = Profile::new(parts).map_err(Error::InconsistentProfile)?;
    Ok(profile)
}
