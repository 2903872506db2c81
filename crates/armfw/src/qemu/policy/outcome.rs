//! What a QEMU load does: why it fails, the ids on one side only, and the lines QEMU prints.

use super::QemuRelease;
use crate::abi::{CpuFeatures, Errno, OneRegId};
use crate::register::RegClass;

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

    /// The vCPU the failure is about (none for the creation of the vCPUs).
    pub fn vcpu(&self) -> Option<usize> {
        match self {
            LoadStop::Create { .. } => None,
            LoadStop::Length { vcpu, .. }
            | LoadStop::Unknown { vcpu, .. }
            | LoadStop::Refused { vcpu, .. }
            | LoadStop::Core { vcpu, .. } => Some(*vcpu),
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
    /// The cpreg ids vCPU 0 of the destination lists, sorted.
    pub destination: Vec<u64>,
    /// Why the load fails; `None`: QEMU loads the stream and the guest goes on.
    pub stop: Option<LoadStop>,
    /// The ids on one side only that the walk met (or passed), in walk order.
    pub unmatched: Vec<Unmatched>,
    /// The refused writes' values, as QEMU reports them from 10.2: (id, written, read back).
    pub(super) refused_values: Vec<(u64, u64, Option<u64>)>,
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
        Some(RegClass::Firmware) => format!("fw reg {index}"),
        Some(RegClass::FirmwareBitmap) => format!("fw feat reg {index}"),
        _ => format!("{id:x}"),
    }
}
