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
use crate::migrate::sequence::{RestoreTarget, SaveSource, VcpuInit};
use crate::register::RegClass;

use super::stream::QemuVcpu;

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

/// How QEMU names a register in its messages (`kvm_print_register_name()`, 10.2, as 11.1
/// prints it: "system register op0:3 ...", measured with Debian's 11.1.3).
pub fn qemu_reg_name(id: u64) -> String {
    let r = OneRegId(id);
    let index = id & 0xffff;
    match RegClass::from_value(r.class()) {
        Some(RegClass::SysReg) => {
            let (op0, op1, crn, crm, op2) = crate::abi::vcpu_reg::sysreg_encoding(id);
            format!("system register op0:{op0} op1:{op1} crn:{crn} crm:{crm} op2:{op2}")
        }
        Some(RegClass::Core) => format!("core reg {id:x}"),
        Some(RegClass::Demux) => format!("demuxed reg {id:x}"),
        _ if id & 0xffff_0000 == 0x0014_0000 => format!("fw reg {index}"),
        _ if id & 0xffff_0000 == 0x0016_0000 => format!("fw feat reg {index}"),
        _ => format!("{id:x}"),
    }
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

/// One incoming vCPU: what QEMU's load uses of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    /// The cpreg ids and values, in stream order (sorted by id).
    pub cpregs: Vec<(u64, u64)>,
    /// PSTATE.
    pub pstate: u64,
}

impl From<&QemuVcpu> for Incoming {
    fn from(v: &QemuVcpu) -> Incoming {
        Incoming {
            cpregs: v.cpregs.clone(),
            pstate: u64::from(v.pstate),
        }
    }
}

impl Incoming {
    /// The vCPUs QEMU would save of a VM of `host` with `features`, created with KVM's
    /// defaults and run once (KVM's first-run changes made): every cpreg the host lists, sorted,
    /// with its value. `None` where the profile has no such feature set (or no whole-vCPU
    /// part).
    pub fn default_vm(
        host: &Profile,
        features: CpuFeatures,
        vcpus: usize,
    ) -> Option<Vec<Incoming>> {
        let mut vm = ModelVm::new(Firmware::new(host));
        let init = VcpuInit {
            psci_0_2: host.capabilities().psci_0_2,
            features,
            sve_vls: None,
        };
        vm.create_vcpus(vcpus, &init).ok()?;
        vm.registers()?;
        let mut out = Vec::with_capacity(vcpus);
        for vcpu in 0..vcpus {
            vm.run(vcpu).ok()?;
        }
        for vcpu in 0..vcpus {
            let mut ids: Vec<u64> = vm
                .listed_ids(vcpu)
                .ok()?
                .into_iter()
                .filter(|&id| is_cpreg(id))
                .collect();
            ids.sort_unstable();
            let cpregs = ids
                .into_iter()
                .map(|id| Some((id, crate::json::le_u64(&vm.get_reg(vcpu, id).ok()?))))
                .collect::<Option<Vec<_>>>()?;
            out.push(Incoming {
                cpregs,
                pstate: 0x3c5,
            });
        }
        Some(out)
    }
}

impl Incoming {
    /// The vCPUs QEMU would carry of a VM saved whole by armfw (format 2.0): each vCPU's
    /// listed ids but the core and SVE ones, sorted, with their saved values (the low 64
    /// bits), and the saved PSTATE. `None` for a firmware-only state.
    pub fn from_snapshot(snapshot: &crate::Snapshot) -> Option<Vec<Incoming>> {
        let m = snapshot.machine()?;
        let mut ids: Vec<u64> = m
            .reg_list
            .iter()
            .copied()
            .filter(|&id| is_cpreg(id))
            .collect();
        ids.sort_unstable();
        let firmware = |id: u64| {
            snapshot
                .vm
                .registers
                .iter()
                .find(|r| r.id == id)
                .map(|r| r.value)
        };
        Some(
            (0..snapshot.vcpus.len())
                .map(|vcpu| Incoming {
                    cpregs: ids
                        .iter()
                        .filter_map(|&id| {
                            let v =
                                firmware(id).or_else(|| m.value(vcpu, id).map(|r| r.low_u64()))?;
                            Some((id, v))
                        })
                        .collect(),
                    pstate: m.value(vcpu, CORE_PSTATE).map_or(0x3c5, |r| r.low_u64()),
                })
                .collect(),
        )
    }
}

/// Why QEMU fails the load.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadStop {
    /// The destination's vCPUs cannot be created with these features.
    Create {
        /// KVM's answer.
        errno: Errno,
    },
    /// More incoming cpregs than the destination lists.
    Length {
        /// The vCPU.
        vcpu: usize,
        /// Incoming.
        incoming: usize,
        /// Listed on the destination.
        destination: usize,
    },
    /// An incoming id the destination does not list.
    Unknown {
        /// The vCPU.
        vcpu: usize,
        /// The first such id.
        id: u64,
    },
    /// KVM refused writes of the vCPU's list (every refused one, in write order).
    Refused {
        /// The vCPU.
        vcpu: usize,
        /// The refused ids and KVM's answers.
        writes: Vec<(u64, Errno)>,
    },
    /// KVM refused the core registers after the load (PSTATE).
    Core {
        /// The vCPU.
        vcpu: usize,
        /// The register.
        id: u64,
        /// KVM's answer.
        errno: Errno,
    },
}

impl LoadStop {
    /// The register the failure is about, where there is one.
    pub fn register(&self) -> Option<u64> {
        match self {
            LoadStop::Create { .. } | LoadStop::Length { .. } => None,
            LoadStop::Unknown { id, .. } | LoadStop::Core { id, .. } => Some(*id),
            LoadStop::Refused { writes, .. } => writes.first().map(|w| w.0),
        }
    }

    /// The rule's name in reports.
    pub fn rule(&self) -> &'static str {
        match self {
            LoadStop::Create { .. } => "vcpu_init",
            LoadStop::Length { .. } => "cpreg_count",
            LoadStop::Unknown { .. } => "cpreg_unknown",
            LoadStop::Refused { .. } => "cpreg_refused",
            LoadStop::Core { .. } => "core_refused",
        }
    }
}

/// An id on one side only, and what the release did with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unmatched {
    /// The vCPU.
    pub vcpu: usize,
    /// The register.
    pub id: u64,
    /// In the stream only (`true`), or on the destination only.
    pub incoming: bool,
    /// What QEMU did.
    pub handling: Handling,
}

/// What QEMU does with an id on one side only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handling {
    /// On the destination only: it keeps its own value (11.1 warns).
    Kept,
    /// In the stream only, above the destination's largest id: the walk (up to 11.0) never
    /// looks at it.
    Unwalked,
    /// In the tolerance list: passed over in silence.
    Tolerated,
    /// Reported as unknown; this fails the load unless a later incoming-only id of the same
    /// vCPU is tolerated (11.1 assigns its `fail` flag instead of accumulating it).
    Reported,
}

/// What a QEMU release does loading a stream on a destination.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadPrediction {
    /// The release modelled.
    pub release: QemuRelease,
    /// The vCPU features QEMU gives the destination's vCPUs.
    pub features: CpuFeatures,
    /// How many cpregs the destination lists per vCPU.
    pub destination_cpregs: usize,
    /// Why the load fails; `None`: QEMU loads the stream and the guest goes on.
    pub stop: Option<LoadStop>,
    /// The ids on one side only that the walk met (or passed), in walk order.
    pub unmatched: Vec<Unmatched>,
    /// The refused writes' values, as QEMU reports them from 10.2: (id, written, read back).
    refused_values: Vec<(u64, u64, Option<u64>)>,
}

impl LoadPrediction {
    /// Whether QEMU loads the stream.
    pub fn loads(&self) -> bool {
        self.stop.is_none()
    }

    /// The lines QEMU prints (its `error_report()`s and warnings, without the program name),
    /// in order.
    pub fn messages(&self) -> Vec<String> {
        let device = |vcpu: &usize| {
            format!("error while loading state for instance {vcpu:#x} of device 'cpu'")
        };
        let mut lines = Vec::new();
        if self.release.walks_to_the_end() {
            for u in &self.unmatched {
                let name = qemu_reg_name(u.id);
                match (u.incoming, u.handling) {
                    (false, Handling::Kept) => lines.push(format!(
                        "warning: handle_cpreg_missing_in_incoming_stream: {name} expected by the destination but not in the incoming stream: skip it"
                    )),
                    (true, Handling::Reported) => lines.push(format!(
                        "handle_cpreg_only_in_incoming_stream: {name} in the incoming stream but unknown on the destination: fail migration"
                    )),
                    _ => {}
                }
            }
        }
        let mut refusals = Vec::new();
        if self.release.names_refused_writes() {
            for &(id, written, now) in &self.refused_values {
                let name = qemu_reg_name(id);
                let errno = match &self.stop {
                    Some(LoadStop::Refused { writes, .. }) => {
                        writes.iter().find(|w| w.0 == id).map(|w| w.1)
                    }
                    _ => None,
                };
                refusals.push(match (errno, now) {
                    (Some(Errno::ENOENT), _) => {
                        format!("Could not set register {name}: unknown to KVM")
                    }
                    (Some(Errno::EINVAL), Some(now)) => {
                        format!("Could not set register {name} to {written:x} (is {now:x})")
                    }
                    (Some(Errno::EINVAL), None) => {
                        format!("Could not set register {name} to {written:x}")
                    }
                    (e, _) => format!(
                        "Could not set register {name}: {}",
                        e.map_or_else(String::new, |e| e.to_string())
                    ),
                });
            }
        }
        match &self.stop {
            None => {}
            Some(LoadStop::Create { errno }) => {
                lines.push(format!("kvm_init_vcpu: kvm_arch_init_vcpu failed: {errno}"));
            }
            Some(LoadStop::Length {
                vcpu,
                incoming,
                destination,
            }) => lines.extend([
                format!("Invalid value {incoming} expecting positive value <= {destination}"),
                "Failed to load cpu:cpreg_vmstate_array_len".into(),
                device(vcpu),
                "load of migration failed: Invalid argument".into(),
            ]),
            Some(LoadStop::Unknown { vcpu, .. }) => {
                lines.push(device(vcpu));
                if !self.release.walks_to_the_end() {
                    lines.push("load of migration failed: Operation not permitted".into());
                }
            }
            Some(LoadStop::Refused { vcpu, .. }) => match self.release {
                QemuRelease::Qemu7_2 => lines.extend([
                    device(vcpu),
                    "load of migration failed: Operation not permitted".into(),
                ]),
                QemuRelease::Qemu10_0 => lines.extend([
                    device(vcpu),
                    "Failed to put registers after init: Invalid argument".into(),
                ]),
                // Measured: 11.1's post_load goes on after a refused write, and the
                // synchronisation right after it writes the list again and ends QEMU.
                QemuRelease::Qemu11_1 => {
                    lines.extend(refusals.iter().cloned());
                    lines.extend(refusals);
                    lines.push("Failed to put registers after init: Invalid argument".into());
                }
            },
            Some(LoadStop::Core { .. }) => {
                lines.push("Failed to put registers after init: Invalid argument".into());
            }
        }
        lines
    }

    /// The register QEMU names first in its messages, where it names one (11.1 names the
    /// ids on one side only and the refused writes; earlier releases none).
    pub fn named_register(&self) -> Option<u64> {
        if !self.release.names_refused_writes() {
            return None;
        }
        let reported = self
            .unmatched
            .iter()
            .find(|u| u.incoming && u.handling == Handling::Reported)
            .map(|u| u.id);
        reported.or_else(|| self.refused_values.first().map(|r| r.0))
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
        destination_cpregs: 0,
        stop: None,
        unmatched: Vec::new(),
        refused_values: Vec::new(),
    };
    let mut vm = ModelVm::new(Firmware::new(dest));
    let init = VcpuInit {
        psci_0_2: dest.capabilities().psci_0_2,
        features,
        sve_vls: None,
    };
    if let Err((_, errno)) = vm.create_vcpus(incoming.len(), &init) {
        out.stop = Some(LoadStop::Create { errno });
        return out;
    }
    // Each vCPU's list and values as QEMU reads them when it creates the vCPU.
    let mut lists = Vec::with_capacity(incoming.len());
    for vcpu in 0..incoming.len() {
        let mut ids: Vec<u64> = vm
            .listed_ids(vcpu)
            .unwrap_or_default()
            .into_iter()
            .filter(|&id| is_cpreg(id))
            .collect();
        ids.sort_unstable();
        let values: Vec<u64> = ids
            .iter()
            .map(|&id| vm.get_reg(vcpu, id).map_or(0, |b| crate::json::le_u64(&b)))
            .collect();
        lists.push((ids, values));
    }
    out.destination_cpregs = lists.first().map_or(0, |l| l.0.len());
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
                let now = vm.get_reg(vcpu, id).ok().map(|b| crate::json::le_u64(&b));
                out.refused_values.push((id, written, now));
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
