//! The document of `armfw check --policy qemu-X` (format `armfw-qemu-check/1`, schema
//! docs/schemas/armfw-qemu-check-1.schema.json).

use serde::{Deserialize, Serialize};

use super::advice::Remedy;
use super::policy::{Handling, HostCpu, LoadPrediction, LoadStop, qemu_reg_name};
use crate::Profile;
use crate::vcpu::names::reg_name;

/// The format name.
pub const QEMU_CHECK_FORMAT: &str = "armfw-qemu-check/1";

/// What was checked and what QEMU will do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct QemuCheckJson {
    /// [`QEMU_CHECK_FORMAT`].
    pub format: String,
    /// Where the vCPUs come from.
    pub source: SourceJson,
    /// The destination host.
    pub destination: DestinationJson,
    /// The policy: `qemu-7.2`, `qemu-10.0`, `qemu-11.1`.
    pub policy: String,
    /// The destination QEMU's `-cpu` option.
    pub cpu: String,
    /// The vCPU features that gives on the destination.
    pub features: crate::abi::CpuFeatures,
    /// `loads` or `refused`.
    pub result: String,
    /// For a refusal: the rule (`cpreg_count`, `cpreg_unknown`, `cpreg_refused`,
    /// `core_refused`, `vcpu_init`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// For a refusal: the vCPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpu: Option<usize>,
    /// The register the refusal is about, where there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub register: Option<RegisterJson>,
    /// The register QEMU names first in its messages, where this release names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub named_register: Option<RegisterJson>,
    /// Every refused write of the failing vCPU.
    pub refused: Vec<RefusedJson>,
    /// The lines QEMU prints.
    pub messages: Vec<String>,
    /// The ids on one side only that the walk met.
    pub unmatched: Vec<UnmatchedJson>,
    /// What would make the move work.
    pub remedies: Vec<String>,
}

/// Where the incoming vCPUs come from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceJson {
    /// `stream` (a QEMU migration stream), `state` (an armfw whole-VM state), `host` (a VM
    /// created with a host's defaults).
    pub kind: String,
    /// The file or profile name.
    pub name: String,
    /// The stream's machine type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_type: Option<String>,
    /// The vCPUs.
    pub vcpus: usize,
    /// vCPU 0's cpreg count.
    pub cpregs: usize,
}

impl SourceJson {
    /// The source of kind `kind` named `name`, of these vCPUs.
    pub fn new(
        kind: &str,
        name: &str,
        machine_type: Option<String>,
        incoming: &[super::policy::Incoming],
    ) -> SourceJson {
        SourceJson {
            kind: kind.into(),
            name: name.into(),
            machine_type,
            vcpus: incoming.len(),
            cpregs: incoming.first().map_or(0, |v| v.cpregs.len()),
        }
    }
}

/// The destination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationJson {
    /// The profile's name.
    pub profile: String,
    /// Its kernel.
    pub kernel: String,
    /// The cpregs its vCPUs list with these features.
    pub cpregs: usize,
}

/// A register, three ways.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterJson {
    /// The ONE_REG id, `0x...`.
    pub id: String,
    /// armfw's name.
    pub name: String,
    /// QEMU's name in its messages.
    pub qemu_name: String,
}

impl RegisterJson {
    /// The register `id`.
    pub fn new(id: u64) -> RegisterJson {
        RegisterJson {
            id: format!("{id:#x}"),
            name: reg_name(id),
            qemu_name: qemu_reg_name(id),
        }
    }
}

/// A refused write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefusedJson {
    /// The register.
    pub register: RegisterJson,
    /// KVM's answer.
    pub errno: String,
}

/// An id on one side only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnmatchedJson {
    /// The vCPU.
    pub vcpu: usize,
    /// The register.
    pub register: RegisterJson,
    /// `stream` (in the stream only) or `destination`.
    pub side: String,
    /// `kept`, `unwalked`, `tolerated`, `reported`.
    pub handling: String,
}

impl QemuCheckJson {
    /// The document of `prediction` of moving `source` to `dest`.
    pub fn new(
        source: SourceJson,
        dest: &Profile,
        cpu_text: &str,
        prediction: &LoadPrediction,
        remedies: &[Remedy],
    ) -> QemuCheckJson {
        let stop = prediction.stop.as_ref();
        let refused = match stop {
            Some(LoadStop::Refused { writes, .. }) => writes
                .iter()
                .map(|&(id, errno)| RefusedJson {
                    register: RegisterJson::new(id),
                    errno: errno.to_string(),
                })
                .collect(),
            _ => Vec::new(),
        };
        QemuCheckJson {
            format: QEMU_CHECK_FORMAT.into(),
            source,
            destination: DestinationJson {
                profile: dest.name().into(),
                kernel: dest.kernel().into(),
                cpregs: prediction.destination.len(),
            },
            policy: prediction.release.name().into(),
            cpu: cpu_text.into(),
            features: prediction.features,
            result: if prediction.loads() {
                "loads"
            } else {
                "refused"
            }
            .into(),
            rule: stop.map(|s| s.rule().into()),
            vcpu: stop.and_then(LoadStop::vcpu),
            register: stop.and_then(LoadStop::register).map(RegisterJson::new),
            named_register: prediction.named_register().map(RegisterJson::new),
            refused,
            messages: prediction.messages(),
            unmatched: prediction
                .unmatched
                .iter()
                .map(|u| UnmatchedJson {
                    vcpu: u.vcpu,
                    register: RegisterJson::new(u.id),
                    side: if u.incoming { "stream" } else { "destination" }.into(),
                    handling: match u.handling {
                        Handling::Kept => "kept",
                        Handling::Unwalked => "unwalked",
                        Handling::Tolerated => "tolerated",
                        Handling::Reported => "reported",
                    }
                    .into(),
                })
                .collect(),
            remedies: remedies.iter().map(Remedy::text).collect(),
        }
    }
}

/// `-cpu` text of `cpu`, as QEMU's command line would say it.
pub fn cpu_text(cpu: HostCpu) -> String {
    let mut s = String::from("host");
    for (on, name) in [(cpu.pmu, "pmu"), (cpu.sve, "sve"), (cpu.pauth, "pauth")] {
        if !on {
            s.push_str(&format!(",{name}=off"));
        }
    }
    s
}
