//! What QEMU does with an incoming vCPU on a destination host, per QEMU release: the named
//! policies `qemu-7.2`, `qemu-10.0` and `qemu-11.1` of `armfw check`.
//!
//! QEMU (`target/arm/machine.c`, `target/arm/kvm.c`) keeps a vCPU's "cpreg" list: every id
//! KVM_GET_REG_LIST gives but the core and SVE ones (`kvm_arm_reg_syncs_via_cpreg_list()`),
//! sorted, read from KVM when the vCPU is created. Loading a vCPU's section
//! (`vmstate_arm_cpu`) it
//!
//! 1. reads `cpreg_vmstate_array_len`, a `VMSTATE_INT32_POSITIVE_LE` field: more ids than
//!    the destination lists fail the load at once (`get_int32_le()`: "Invalid value N
//!    expecting positive value <= M", then "Failed to load cpu:cpreg_vmstate_array_len");
//! 2. in `cpu_post_load()` walks both sorted lists: an incoming id the destination does not
//!    list fails the load; a destination id that is not incoming keeps its own value. The
//!    walk ends with either list, so up to 11.0 incoming ids above the destination's largest
//!    are dropped unchecked;
//! 3. writes the destination's whole list back with `write_list_to_kvmstate()`, every write
//!    tried, any refusal failing the load (QEMU does not say which);
//! 4. writes the core registers and the list again (`kvm_arch_put_registers()`): 7.2 after
//!    the load and whatever KVM answers; 10.0 after the load even when it failed, a refusal
//!    ending QEMU ("Failed to put registers after init: Invalid argument"); 11.1 right after
//!    `post_load` (which goes on after refused writes), naming each refusal, then ending the
//!    same way. (7.2's and 11.1's behaviour here is measured, docs/qemu.md.)
//!
//! [`predict`] plays that on the model of the destination ([`crate::migrate::ModelVm`]),
//! whose KVM answers each write by the destination's rules.

use crate::Profile;
use crate::abi::{CpuFeature, CpuFeatures, Errno, OneRegId};
use crate::firmware::Firmware;
use crate::migrate::ModelVm;
use crate::migrate::sequence::{RegWriter, RestoreTarget, SaveSource, VcpuInit};

mod incoming;
mod outcome;

pub use incoming::Incoming;
pub use outcome::{Handling, LoadPrediction, LoadStop, Unmatched, qemu_reg_name};

/// KVM_REG_ARM_CORE's PSTATE (`struct kvm_regs`, `regs.pstate`).
pub const CORE_PSTATE: u64 = 0x6030_0000_0010_0042;

/// A QEMU release whose load policy armfw models.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QemuRelease {
    /// QEMU 7.2 (Debian 12's).
    Qemu7_2,
    /// QEMU 10.0 (Debian 13's).
    Qemu10_0,
    /// QEMU 11.1.
    Qemu11_1,
}

impl QemuRelease {
    /// Every modelled release, oldest first.
    pub const ALL: [QemuRelease; 3] = [
        QemuRelease::Qemu7_2,
        QemuRelease::Qemu10_0,
        QemuRelease::Qemu11_1,
    ];

    /// The policy's name: `qemu-7.2`, `qemu-10.0`, `qemu-11.1`.
    pub const fn name(self) -> &'static str {
        match self {
            QemuRelease::Qemu7_2 => "qemu-7.2",
            QemuRelease::Qemu10_0 => "qemu-10.0",
            QemuRelease::Qemu11_1 => "qemu-11.1",
        }
    }

    /// The release as `(major, minor)`.
    pub const fn version(self) -> (u32, u32) {
        match self {
            QemuRelease::Qemu7_2 => (7, 2),
            QemuRelease::Qemu10_0 => (10, 0),
            QemuRelease::Qemu11_1 => (11, 1),
        }
    }

    /// The release of a policy name.
    pub fn from_name(name: &str) -> Option<QemuRelease> {
        QemuRelease::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The modelled release of a QEMU version, if it is one.
    pub fn from_version(version: (u32, u32)) -> Option<QemuRelease> {
        QemuRelease::ALL
            .into_iter()
            .find(|r| r.version() == version)
    }

    /// Whether `cpreg_vmstate_array_len` is a `VMSTATE_INT32_POSITIVE_LE` field, bounded by
    /// the destination's count (up to 10.2; 11.0 made it a plain `VMSTATE_INT32` with the
    /// arrays allocated to its value, commit ab2ddc7b66).
    const fn bounds_the_count(self) -> bool {
        !matches!(self, QemuRelease::Qemu11_1)
    }

    /// Whether `cpu_post_load()` walks both lists to their ends, handling each id on one side
    /// only against the tolerance list (11.1: commits bb36be6fd799, 5e65e7aa4a1b,
    /// 9d2e717da4f4). Before, the walk stops at the end of either list and the first
    /// incoming id the destination lacks fails the load.
    const fn walks_to_the_end(self) -> bool {
        matches!(self, QemuRelease::Qemu11_1)
    }

    /// Whether a refused write is reported by register (10.2: `kvm_print_register_name()`,
    /// "Could not set register ...").
    const fn names_refused_writes(self) -> bool {
        matches!(self, QemuRelease::Qemu11_1)
    }

    /// The registers this release tolerates on one side only
    /// (`kvm_arm_set_cpreg_mig_tolerances()`, for `-cpu host` under KVM).
    fn tolerances(self) -> &'static [Tolerance] {
        match self {
            QemuRelease::Qemu11_1 => &TOLERANCES_11_1,
            _ => &[],
        }
    }
}

impl std::fmt::Display for QemuRelease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A register QEMU lets be on one side of a migration only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tolerance {
    /// The register.
    pub id: u64,
    /// When.
    pub kind: ToleranceKind,
}

/// When a [`Tolerance`] applies (QEMU's `ToleranceNotOnBothEnds`, `ToleranceOnlySrcTestValue`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToleranceKind {
    /// Missing at either end.
    NotOnBothEnds,
    /// In the stream only, where its value masked is this value.
    OnlySrcValue {
        /// The mask.
        mask: u64,
        /// The value.
        value: u64,
    },
}

/// QEMU 11.1's tolerances (target/arm/cpu64.c, `kvm_arm_set_cpreg_mig_tolerances()`):
/// TCR2_EL1, PIRE0_EL1 and PIR_EL1, which Linux lists unconditionally before 6.13 and only
/// with their features after (commit 113ed8e53c08), and VENDOR_HYP_BMAP_2 (Linux 6.15),
/// incoming only with the value 0 (commit 6dd8be31f8fb).
pub const TOLERANCES_11_1: [Tolerance; 4] = [
    Tolerance {
        id: crate::abi::vcpu_reg::sysreg_id(3, 0, 2, 0, 3),
        kind: ToleranceKind::NotOnBothEnds,
    },
    Tolerance {
        id: crate::abi::vcpu_reg::sysreg_id(3, 0, 10, 2, 2),
        kind: ToleranceKind::NotOnBothEnds,
    },
    Tolerance {
        id: crate::abi::vcpu_reg::sysreg_id(3, 0, 10, 2, 3),
        kind: ToleranceKind::NotOnBothEnds,
    },
    Tolerance {
        id: crate::abi::FwReg::VendorHypBmap2.id(),
        kind: ToleranceKind::OnlySrcValue {
            mask: u64::MAX,
            value: 0,
        },
    },
];

fn tolerated(release: QemuRelease, id: u64, incoming: Option<u64>) -> bool {
    release.tolerances().iter().any(|t| {
        t.id == id
            && match (t.kind, incoming) {
                (ToleranceKind::NotOnBothEnds, _) => true,
                (ToleranceKind::OnlySrcValue { mask, value }, Some(v)) => v & mask == value,
                (ToleranceKind::OnlySrcValue { .. }, None) => false,
            }
    })
}

pub use crate::register::is_cpreg;

/// The `-cpu host` options that choose a vCPU's KVM features: `pmu`, `sve`, `pauth` (each
/// on by default where the host's KVM offers it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostCpu {
    /// `pmu=on` (the default).
    pub pmu: bool,
    /// `sve=on` (the default).
    pub sve: bool,
    /// `pauth=on` (the default).
    pub pauth: bool,
}

impl Default for HostCpu {
    fn default() -> Self {
        HostCpu {
            pmu: true,
            sve: true,
            pauth: true,
        }
    }
}

impl HostCpu {
    /// Parse `host[,pmu=on|off][,sve=on|off][,pauth=on|off]`, QEMU's `-cpu` form.
    pub fn parse(text: &str) -> Result<HostCpu, String> {
        let mut parts = text.split(',');
        if parts.next() != Some("host") {
            return Err(format!(
                "{text:?}: the CPU model must be host (QEMU's -cpu host under KVM)"
            ));
        }
        let mut cpu = HostCpu::default();
        for p in parts {
            let (key, value) = p
                .split_once('=')
                .ok_or_else(|| format!("{p:?}: expected OPTION=on|off"))?;
            let on = match value {
                "on" => true,
                "off" => false,
                _ => return Err(format!("{p:?}: the value must be on or off")),
            };
            match key {
                "pmu" => cpu.pmu = on,
                "sve" => cpu.sve = on,
                "pauth" => cpu.pauth = on,
                _ => return Err(format!("{key:?}: not a -cpu host option (pmu, sve, pauth)")),
            }
        }
        Ok(cpu)
    }

    /// The KVM vCPU features QEMU asks for on `host`: each option that is on and that the
    /// host offers (QEMU leaves out what KVM does not have).
    pub fn features(self, host: &Profile) -> CpuFeatures {
        let offered = host
            .vcpu()
            .map_or(CpuFeatures::NONE, crate::profile::VcpuProfile::all_features);
        let mut f = CpuFeatures::NONE;
        for (on, feature) in [
            (self.pmu, CpuFeature::PmuV3),
            (self.sve, CpuFeature::Sve),
            (self.pauth, CpuFeature::PtrauthAddress),
            (self.pauth, CpuFeature::PtrauthGeneric),
        ] {
            if on && offered.has(feature) {
                f = f.with(feature);
            }
        }
        f
    }
}

/// What `release` does loading `incoming` (every vCPU of a stream, in order) on `dest`,
/// started with `cpu`: played on the model of `dest`.
pub fn predict(
    release: QemuRelease,
    incoming: &[Incoming],
    dest: &Profile,
    cpu: HostCpu,
) -> LoadPrediction {
    let features = cpu.features(dest);
    let mut out = LoadPrediction {
        release,
        features,
        destination: Vec::new(),
        stop: None,
        unmatched: Vec::new(),
        refused_values: Vec::new(),
    };
    let mut vm = match model_vm(dest, features, incoming.len()) {
        Ok(vm) => vm,
        Err(errno) => {
            out.stop = Some(LoadStop::Create { errno });
            return out;
        }
    };
    // Each vCPU's list and values as QEMU reads them when it creates the vCPU.
    let mut lists: Vec<(Vec<u64>, Vec<u64>)> = (0..incoming.len())
        .map(|vcpu| cpregs(&vm, vcpu).unwrap_or_default().into_iter().unzip())
        .collect();
    out.destination = lists.first().map(|l| l.0.clone()).unwrap_or_default();
    for (vcpu, inc) in incoming.iter().enumerate() {
        let (ids, values) = &mut lists[vcpu];
        if release.bounds_the_count() && inc.cpregs.len() > ids.len() {
            out.stop = Some(LoadStop::Length {
                vcpu,
                incoming: inc.cpregs.len(),
                destination: ids.len(),
            });
            return out;
        }
        let fail = merge(release, vcpu, ids, values, &inc.cpregs, &mut out.unmatched);
        if let Some(id) = fail {
            out.stop = Some(LoadStop::Unknown { vcpu, id });
            return out;
        }
        let writes = write_list(&mut vm, vcpu, ids, values);
        if !writes.is_empty() {
            for &(id, _) in &writes {
                let written = ids.iter().position(|&i| i == id).map_or(0, |k| values[k]);
                out.refused_values.push((id, written, value(&vm, vcpu, id)));
            }
            out.stop = Some(LoadStop::Refused { vcpu, writes });
            return out;
        }
    }
    // cpu_synchronize_all_post_init(): the core registers, then the list again; 7.2 does
    // not look at KVM's answer.
    for (vcpu, inc) in incoming.iter().enumerate() {
        if release == QemuRelease::Qemu7_2 {
            break;
        }
        if let Err(errno) = vm.set_reg(vcpu, CORE_PSTATE, &inc.pstate.to_le_bytes()) {
            out.stop = Some(LoadStop::Core {
                vcpu,
                id: CORE_PSTATE,
                errno,
            });
            return out;
        }
    }
    out
}

/// A model VM of `host` with `vcpus` vCPUs set up as QEMU's `-cpu host` does (PSCI 0.2 where
/// the host has it, `features`, the host's SVE lengths).
fn model_vm(host: &Profile, features: CpuFeatures, vcpus: usize) -> Result<ModelVm, Errno> {
    let mut vm = ModelVm::new(Firmware::new(host));
    let init = VcpuInit {
        psci_0_2: host.capabilities().psci_0_2,
        features,
        sve_vls: None,
    };
    vm.create_vcpus(vcpus, &init).map_err(|(_, errno)| errno)?;
    Ok(vm)
}

/// The value of `id` on `vcpu` as QEMU keeps it (64 bits).
fn value(vm: &ModelVm, vcpu: usize, id: u64) -> Option<u64> {
    vm.get_reg(vcpu, id).ok().map(|b| crate::json::le_u64(&b))
}

/// `vcpu`'s cpreg list as QEMU reads it from KVM (`kvm_arm_init_cpreg_list()`): every listed
/// id but the core and SVE ones, sorted, with its value.
fn cpregs(vm: &ModelVm, vcpu: usize) -> Option<Vec<(u64, u64)>> {
    let mut ids: Vec<u64> = vm
        .listed_ids(vcpu)
        .ok()?
        .into_iter()
        .filter(|&id| is_cpreg(id))
        .collect();
    ids.sort_unstable();
    ids.into_iter()
        .map(|id| Some((id, value(vm, vcpu, id)?)))
        .collect()
}

/// `cpu_post_load()`'s walk over the destination's sorted `ids` and the incoming list,
/// copying each matching incoming value into `values` and noting each id on one side only in
/// `unmatched`. The id that fails the load, if one does.
fn merge(
    release: QemuRelease,
    vcpu: usize,
    ids: &[u64],
    values: &mut [u64],
    incoming: &[(u64, u64)],
    unmatched: &mut Vec<Unmatched>,
) -> Option<u64> {
    let mut note = |id, incoming, handling| {
        unmatched.push(Unmatched {
            vcpu,
            id,
            incoming,
            handling,
        });
    };
    let (mut i, mut v) = (0, 0);
    // 11.1's `fail` holds the answer for the last incoming-only id; `first` the first one
    // reported.
    let (mut fail, mut first) = (false, None);
    let mut only_incoming = |id: u64, value: u64, note: &mut dyn FnMut(u64, bool, Handling)| {
        if tolerated(release, id, Some(value)) {
            note(id, true, Handling::Tolerated);
            fail = false;
        } else {
            note(id, true, Handling::Reported);
            first.get_or_insert(id);
            fail = true;
        }
    };
    while i < ids.len() && v < incoming.len() {
        let (inc, value) = incoming[v];
        if inc > ids[i] {
            let h = if tolerated(release, ids[i], None) {
                Handling::Tolerated
            } else {
                Handling::Kept
            };
            note(ids[i], false, h);
            i += 1;
        } else if inc < ids[i] {
            if !release.walks_to_the_end() {
                note(inc, true, Handling::Reported);
                return Some(inc);
            }
            only_incoming(inc, value, &mut note);
            v += 1;
        } else {
            values[i] = value;
            i += 1;
            v += 1;
        }
    }
    for &id in &ids[i..] {
        let h = if tolerated(release, id, None) {
            Handling::Tolerated
        } else {
            Handling::Kept
        };
        note(id, false, h);
    }
    for &(id, value) in &incoming[v..] {
        if release.walks_to_the_end() {
            only_incoming(id, value, &mut note);
        } else {
            note(id, true, Handling::Unwalked);
        }
    }
    if fail { first } else { None }
}

/// `write_list_to_kvmstate()`: every register of the list written, in order; the refused
/// ones.
fn write_list(vm: &mut ModelVm, vcpu: usize, ids: &[u64], values: &[u64]) -> Vec<(u64, Errno)> {
    let mut refused = Vec::new();
    for (&id, &value) in ids.iter().zip(values) {
        let size = OneRegId(id).size_bytes().min(8);
        if let Err(errno) = vm.set_reg(vcpu, id, &value.to_le_bytes()[..size]) {
            refused.push((id, errno));
        }
    }
    refused
}

#[cfg(test)]
mod tests;
