//! `armfw probe`: this host's profile, read from the running kernel with scratch VMs.

use armfw::abi::psci::PSCI_0_2_FN_PSCI_VERSION;
use armfw::abi::vcpu_reg::sysreg_id;
use armfw::abi::{CpuFeature, CpuFeatures, FwReg, OneRegId, PsciVersion};
use armfw::json::{Number, Wide};
use armfw::profile::{
    Capabilities, FeatureSet, IdMap, Profile, ProfileParts, ProfileReg, VcpuCapabilities,
    VcpuProfile,
};
use armfw::register::RegClass;
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
        ..VmSpec::default()
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
        vcpu: Some(probe_vcpu()?),
    };
    let profile = Profile::new(parts).map_err(Error::InconsistentProfile)?;
    Ok(profile)
}

/// The sets of vCPU features a probe tries: none, then each feature's group (the features KVM
/// takes together, [`CpuFeature::group`]) once.
fn candidate_sets() -> Vec<CpuFeatures> {
    let mut sets = vec![CpuFeatures::NONE];
    for f in CpuFeature::ALL {
        if !sets.contains(&f.group()) {
            sets.push(f.group());
        }
    }
    sets
}

/// A one-vCPU VM with PSCI_0_2 and `features`, set up as the scenario format's `vm` does.
fn vm_with(features: CpuFeatures) -> Result<TestVm, Error> {
    TestVm::new(&VmSpec {
        features,
        ..VmSpec::default()
    })
}

/// Every register of `ids` read on vCPU 0.
fn read_all(vm: &TestVm, ids: &[u64]) -> Result<Vec<Vec<u8>>, Error> {
    ids.iter()
        .map(|&id| vm.get_one_reg(0, id).map_err(sys("KVM_GET_ONE_REG")))
        .collect()
}

/// The registers the probe's own guest code writes to make a call (x0..x17, PC, PSTATE:
/// the core class; VBAR_EL1): left out of `first_run`.
fn written_by_call(id: u64) -> bool {
    OneRegId(id).class() == RegClass::Core.value() || id == crate::regs::VBAR_EL1
}

/// One feature set as a probe sees it (see [`FeatureSet`]).
fn probe_set(features: CpuFeatures) -> Result<FeatureSet, Error> {
    let mut vm = vm_with(features)?;
    let ids = vm.reg_list(0).map_err(sys("KVM_GET_REG_LIST"))?;
    let first = read_all(&vm, &ids)?;
    let again = read_all(&vm, &ids)?;
    let other = vm_with(features)?;
    if other.reg_list(0).map_err(sys("KVM_GET_REG_LIST"))? != ids {
        return Err(Error::Probe(format!(
            "two fresh VMs with the features {features} list different registers"
        )));
    }
    let fresh = read_all(&other, &ids)?;
    other.leak();
    let varies: Vec<Number> = ids
        .iter()
        .enumerate()
        .filter(|&(i, _)| first[i] != again[i] || first[i] != fresh[i])
        .map(|(_, &id)| Number(id))
        .collect();
    // The first KVM_RUN: an HVC PSCI_VERSION, answered in the kernel.
    vm.call(
        0,
        crate::Conduit::Hvc,
        [u64::from(PSCI_0_2_FN_PSCI_VERSION), 0, 0, 0],
    )?;
    let after = read_all(&vm, &ids)?;
    vm.leak();
    let mut first_run = Vec::new();
    for (i, &id) in ids.iter().enumerate() {
        if after[i] != first[i] && !written_by_call(id) && !varies.contains(&Number(id)) {
            first_run.push((id, Wide::from_le(&after[i])));
        }
    }
    Ok(FeatureSet {
        features,
        // A register that varies has no reset value: 0 stands for it, so that probing a host
        // again gives the same file.
        registers: IdMap(
            ids.iter()
                .zip(&first)
                .map(|(&id, v)| {
                    let value = if varies.contains(&Number(id)) {
                        Wide::from(0)
                    } else {
                        Wide::from_le(v)
                    };
                    (id, value)
                })
                .collect(),
        ),
        first_run: IdMap(first_run),
        varies,
    })
}

/// The whole vCPU as this host's KVM shows it: the capabilities that change register rules,
/// the writable masks of the ID registers, and every feature set the host offers (see
/// [`VcpuProfile`]).
pub fn probe_vcpu() -> Result<VcpuProfile, Error> {
    let vm = vm_with(CpuFeatures::NONE)?;
    let cap = |c: u32| vm.check_vm_extension(c);
    let ranges = cap(kvm_bindings::KVM_CAP_ARM_SUPPORTED_REG_MASK_RANGES);
    let capabilities = VcpuCapabilities {
        writable_imp_id_regs: cap(kvm_bindings::KVM_CAP_ARM_WRITABLE_IMP_ID_REGS) > 0,
        counter_offset: cap(kvm_bindings::KVM_CAP_COUNTER_OFFSET) > 0,
        reg_mask_ranges: Number(u64::try_from(ranges.max(0)).unwrap_or(0)),
        mte: cap(kvm_bindings::KVM_CAP_ARM_MTE) > 0,
    };
    let writable_masks = if ranges & 1 != 0 {
        let masks = crate::sys::get_writable_masks(vm.vm_fd())
            .map_err(sys("KVM_ARM_GET_REG_WRITABLE_MASKS"))?;
        Some(IdMap(
            masks
                .iter()
                .enumerate()
                .filter(|&(_, &m)| m != 0)
                .map(|(i, &m)| (feature_id_reg(i), Wide::from(m)))
                .collect(),
        ))
    } else {
        None
    };
    vm.leak();
    let mut feature_sets = Vec::new();
    let mut all = CpuFeatures::NONE;
    for features in candidate_sets() {
        if !features.is_empty() && vm_with(features).map(TestVm::leak).is_err() {
            continue;
        }
        all = CpuFeatures::of(&all.iter().chain(features.iter()).collect::<Vec<_>>());
        feature_sets.push(probe_set(features)?);
    }
    // Every feature but the PMU: what QEMU's `-cpu host,pmu=off` asks for.
    let no_pmu = CpuFeatures::of(
        &all.iter()
            .filter(|&f| f != CpuFeature::PmuV3)
            .collect::<Vec<_>>(),
    );
    if all.has(CpuFeature::PmuV3) && !feature_sets.iter().any(|s| s.features == no_pmu) {
        feature_sets.push(probe_set(no_pmu)?);
    }
    if !feature_sets.iter().any(|s| s.features == all) {
        feature_sets.push(probe_set(all)?);
    }
    let v = VcpuProfile {
        capabilities,
        writable_masks,
        feature_sets,
    };
    v.validate().map_err(Error::InconsistentProfile)?;
    Ok(v)
}

/// The ONE_REG id of mask `i` of the feature-ID range: (3, op1, 0, CRm, op2) with
/// `i = op1' << 6 | CRm << 3 | op2`, op1 = 0, 1, 3 for op1' = 0, 1, 2.
fn feature_id_reg(i: usize) -> u64 {
    let i = i as u64;
    let op1 = [0, 1, 3][usize::try_from(i >> 6).unwrap_or(0).min(2)];
    sysreg_id(3, op1, 0, (i >> 3) & 7, i & 7)
}
