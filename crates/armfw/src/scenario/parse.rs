//! Reading scenario files: each part of the format is a serde type read with
//! [`crate::json::from_str`]. The `Raw…` types are the file's schema (every key, its JSON
//! type); `TryFrom` conversions hold the rules between keys, with the paths of the keys they
//! concern.
//!
//! A step is one flat `RawStep` with every step key optional, not a serde enum tagged by
//! `op`: serde reads an internally tagged enum through a buffer that loses the field paths
//! (`steps[3].x[1]` would become `steps[3]`). [`STEP_KEYS`] says which keys each op takes.

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_json::Value;

use crate::abi::{CpuFeature, CpuFeatures, FwReg, OneRegId};
use crate::firmware::{Conduit, KVM_MP_STATE_NAMES};
use crate::json::{self, FieldError, FieldErrorKind, Invalid, Number, Wide};

/// The size of KVM_REG_ARM64_SVE_VLS (U512): bit vq−1 of its 8 words is vector length 128·vq.
pub const SVE_VLS_BYTES: usize = 64;

/// The largest `vcpus` a scenario may ask for.
pub const MAX_SCENARIO_VCPUS: usize = 64;

/// Who answers the guest's calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirmwareMode {
    /// KVM's in-kernel firmware.
    Kernel,
    /// armfw in userspace through the SMCCC filter (real backend only).
    Armfw,
}

/// The `vm` object.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawVm")]
pub struct VmSpec {
    /// Number of vCPUs, 1 to 64.
    pub vcpus: usize,
    /// Every vCPU gets KVM_ARM_VCPU_PSCI_0_2.
    pub psci_0_2: bool,
    /// vCPUs initialised with KVM_ARM_VCPU_POWER_OFF.
    pub power_off: Vec<usize>,
    /// KVM_CAP_ARM_SYSTEM_SUSPEND is enabled before the vCPUs exist.
    pub system_suspend: bool,
    /// Who answers the calls.
    pub firmware: FirmwareMode,
    /// Version 2: the vCPU features every vCPU is initialised with (`features`).
    pub features: CpuFeatures,
    /// Version 2: the 64-byte KVM_REG_ARM64_SVE_VLS value written before finalizing
    /// (`sve_vls`, only with `sve`); `None` keeps the host's default lengths.
    pub sve_vls: Option<Vec<u8>>,
    /// Version 2: KVM_CAP_ARM_WRITABLE_IMP_ID_REGS is enabled before the vCPUs exist.
    pub writable_imp_id_regs: bool,
}

impl Default for VmSpec {
    fn default() -> Self {
        VmSpec {
            vcpus: 1,
            psci_0_2: true,
            power_off: Vec::new(),
            system_suspend: false,
            firmware: FirmwareMode::Kernel,
            features: CpuFeatures::NONE,
            sve_vls: None,
            writable_imp_id_regs: false,
        }
    }
}

/// One step: the vCPU it addresses and what it does.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawStep")]
pub struct Step {
    /// The vCPU index (default 0).
    pub vcpu: usize,
    /// What the VMM does.
    pub kind: StepKind,
}

/// What a step does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepKind {
    /// KVM_GET_REG_LIST: every id in KVM's order with `"classes": "all"` (version 2),
    /// else only the firmware classes 0x14 and 0x16.
    RegList {
        /// `"classes": "all"`.
        all: bool,
    },
    /// KVM_GET_ONE_REG.
    Get {
        /// The ONE_REG id.
        reg: u64,
    },
    /// KVM_SET_ONE_REG.
    Set {
        /// The ONE_REG id.
        reg: u64,
        /// The buffer written: the value little-endian in the id's size.
        value: Vec<u8>,
    },
    /// The guest makes a call.
    Call {
        /// HVC or SMC.
        conduit: Conduit,
        /// x0..x3.
        x: [u64; 4],
    },
    /// Read PC and x0 without running.
    Entry,
    /// KVM_GET_MP_STATE.
    MpState,
    /// KVM_SET_MP_STATE.
    SetMpState {
        /// The raw `KVM_MP_STATE_*` value.
        state: u32,
    },
    /// KVM_SET_DEVICE_ATTR(KVM_ARM_VM_SMCCC_FILTER).
    SmcccFilter {
        /// First function id.
        base: u32,
        /// nr_functions.
        count: u32,
        /// The action byte.
        action: u8,
    },
    /// KVM_ARM_SET_COUNTER_OFFSET on the VM (an armfw extension of the format, see
    /// [`crate::scenario`]).
    CounterOffset {
        /// `counter_offset`; `reserved` is zero.
        offset: u64,
    },
}

/// A parsed scenario. A malformed `vm` or step is kept as its error: it becomes an `error`
/// result at its place when the scenario runs.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(from = "RawScenario")]
pub struct Scenario {
    /// The name (the file name without `.json`).
    pub name: String,
    /// The VM, or why the `vm` object is malformed.
    pub vm: Result<VmSpec, FieldError>,
    /// The steps, each parsed or the reason it is malformed.
    pub steps: Vec<Result<Step, FieldError>>,
}

/// Why a file is not a scenario at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Not JSON.
    #[error("not JSON: {0}")]
    Json(String),
    /// The document's shape is wrong (name, steps, top-level keys, a key given twice).
    #[error(transparent)]
    Field(FieldError),
}

impl From<FieldError> for ParseError {
    fn from(e: FieldError) -> Self {
        match e.kind {
            FieldErrorKind::Syntax => ParseError::Json(e.message),
            _ => ParseError::Field(e),
        }
    }
}

/// Parse the scenario `text`; `file_stem` (the file name without `.json`) must equal `name`.
pub fn parse(text: &str, file_stem: Option<&str>) -> Result<Scenario, ParseError> {
    let scenario: Scenario = json::from_str(text)?;
    if let Some(stem) = file_stem {
        if scenario.name != stem {
            let name = &scenario.name;
            return Err(FieldError::bad_value(
                "name",
                format!("{name:?} is not the file name {stem:?}"),
            )
            .into());
        }
    }
    Ok(scenario)
}

/// The keys each op takes besides `op` and `vcpu`.
const STEP_KEYS: [(&str, &[&str]); 9] = [
    ("reg_list", &["classes"]),
    ("get", &["reg"]),
    ("set", &["reg", "value"]),
    ("call", &["x", "conduit"]),
    ("entry", &[]),
    ("mp_state", &[]),
    ("set_mp_state", &["mp_state"]),
    ("smccc_filter", &["base", "count", "action"]),
    ("counter_offset", &["value"]),
];

/// The document: `vm` and each step are kept as JSON and read on their own, so that a
/// malformed one becomes that place's error instead of refusing the file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    vm: Option<Value>,
    steps: Vec<Value>,
}

impl From<RawScenario> for Scenario {
    fn from(raw: RawScenario) -> Scenario {
        Scenario {
            name: raw.name,
            vm: raw
                .vm
                .map_or_else(|| Ok(VmSpec::default()), |v| json::from_value_at("vm", &v)),
            steps: raw
                .steps
                .iter()
                .enumerate()
                .map(|(i, v)| json::from_value_at(&format!("steps[{i}]"), v))
                .collect(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVm {
    vcpus: Option<Number>,
    psci_0_2: Option<bool>,
    power_off: Option<Vec<Number>>,
    system_suspend: Option<bool>,
    firmware: Option<String>,
    features: Option<CpuFeatures>,
    sve_vls: Option<Wide>,
    writable_imp_id_regs: Option<bool>,
}

impl TryFrom<RawVm> for VmSpec {
    type Error = Invalid;

    fn try_from(raw: RawVm) -> Result<VmSpec, Invalid> {
        let default = VmSpec::default();
        let vcpus = match raw.vcpus {
            None => default.vcpus,
            Some(Number(n)) => match usize::try_from(n) {
                Ok(v) if (1..=MAX_SCENARIO_VCPUS).contains(&v) => v,
                _ => {
                    return Err(bad(
                        "vcpus",
                        format!("{n} is out of range (1 to {MAX_SCENARIO_VCPUS})"),
                    ));
                }
            },
        };
        let mut power_off = Vec::new();
        for (i, &n) in raw.power_off.iter().flatten().enumerate() {
            let path = format!("power_off[{i}]");
            let idx = index(&path, n, vcpus)?;
            if power_off.contains(&idx) {
                return Err(bad(&path, format!("vCPU {idx} is listed twice")));
            }
            power_off.push(idx);
        }
        let firmware = match raw.firmware.as_deref() {
            None | Some("kernel") => FirmwareMode::Kernel,
            Some("armfw") => FirmwareMode::Armfw,
            Some(other) => {
                return Err(bad(
                    "firmware",
                    format!("expected \"kernel\" or \"armfw\", found {other:?}"),
                ));
            }
        };
        let features = raw.features.unwrap_or_default();
        let sve_vls = match raw.sve_vls {
            None => None,
            Some(_) if !features.has(CpuFeature::Sve) => {
                return Err(bad(
                    "sve_vls",
                    "is given without the \"sve\" feature".into(),
                ));
            }
            Some(v) => Some(v.fit(SVE_VLS_BYTES).ok_or_else(|| {
                bad(
                    "sve_vls",
                    format!("does not fit the register's {SVE_VLS_BYTES}-byte buffer"),
                )
            })?),
        };
        Ok(VmSpec {
            vcpus,
            psci_0_2: raw.psci_0_2.unwrap_or(default.psci_0_2),
            power_off,
            system_suspend: raw.system_suspend.unwrap_or(default.system_suspend),
            firmware,
            features,
            sve_vls,
            writable_imp_id_regs: raw.writable_imp_id_regs.unwrap_or(false),
        })
    }
}

/// Every key a step may have; which ones an op takes is [`STEP_KEYS`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    op: String,
    vcpu: Option<Number>,
    reg: Option<RegId>,
    value: Option<Wide>,
    classes: Option<String>,
    x: Option<Vec<Number>>,
    conduit: Option<String>,
    mp_state: Option<String>,
    base: Option<Number>,
    count: Option<Number>,
    action: Option<FilterAction>,
}

impl RawStep {
    /// The op-specific keys present, in [`STEP_KEYS`]' spelling.
    fn present(&self) -> impl Iterator<Item = &'static str> {
        [
            ("reg", self.reg.is_some()),
            ("value", self.value.is_some()),
            ("classes", self.classes.is_some()),
            ("x", self.x.is_some()),
            ("conduit", self.conduit.is_some()),
            ("mp_state", self.mp_state.is_some()),
            ("base", self.base.is_some()),
            ("count", self.count.is_some()),
            ("action", self.action.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, present)| present.then_some(k))
    }
}

impl TryFrom<RawStep> for Step {
    type Error = Invalid;

    fn try_from(raw: RawStep) -> Result<Step, Invalid> {
        let op = raw.op.as_str();
        let Some(&(_, keys)) = STEP_KEYS.iter().find(|(name, _)| *name == op) else {
            return Err(bad("op", format!("unknown op {op:?}")));
        };
        let vcpu = match raw.vcpu {
            None => 0,
            Some(n) => index("vcpu", n, MAX_SCENARIO_VCPUS)?,
        };
        let kind = match op {
            "get" => StepKind::Get {
                reg: required("reg", raw.reg)?.0,
            },
            "set" => {
                let reg = required("reg", raw.reg)?.0;
                let value = required("value", raw.value.as_ref())?;
                let size = OneRegId(reg).size_bytes();
                let Some(value) = value.fit(size) else {
                    let shown = crate::json::hex_le_bytes(&value.bytes);
                    return Err(bad(
                        "value",
                        format!("{shown} does not fit the register's {size}-byte buffer"),
                    ));
                };
                StepKind::Set { reg, value }
            }
            "call" => {
                let list = required("x", raw.x.as_ref())?;
                if list.len() > 4 {
                    return Err(bad(
                        "x",
                        format!("has {} entries; at most 4 (x0..x3)", list.len()),
                    ));
                }
                let mut x = [0u64; 4];
                for (slot, n) in x.iter_mut().zip(list) {
                    *slot = n.0;
                }
                let conduit = match raw.conduit.as_deref() {
                    None | Some("hvc") => Conduit::Hvc,
                    Some("smc") => Conduit::Smc,
                    Some(other) => {
                        return Err(bad(
                            "conduit",
                            format!("expected \"hvc\" or \"smc\", found {other:?}"),
                        ));
                    }
                };
                StepKind::Call { conduit, x }
            }
            "entry" => StepKind::Entry,
            "mp_state" => StepKind::MpState,
            "set_mp_state" => {
                let name = required("mp_state", raw.mp_state.as_deref())?;
                let Some(&(_, state)) = KVM_MP_STATE_NAMES.iter().find(|(n, _)| *n == name) else {
                    return Err(bad(
                        "mp_state",
                        format!("{name:?} is not a KVM_MP_STATE_* name"),
                    ));
                };
                StepKind::SetMpState { state }
            }
            "counter_offset" => {
                let value = required("value", raw.value.as_ref())?;
                let Some(bytes) = value.fit(8) else {
                    let shown = crate::json::hex_le_bytes(&value.bytes);
                    return Err(bad("value", format!("{shown} does not fit 64 bits")));
                };
                StepKind::CounterOffset {
                    offset: crate::json::le_u64(&bytes),
                }
            }
            "smccc_filter" => StepKind::SmcccFilter {
                base: below_2_32("base", required("base", raw.base)?)?,
                count: below_2_32("count", required("count", raw.count)?)?,
                action: required("action", raw.action)?.0,
            },
            _ => StepKind::RegList {
                all: match raw.classes.as_deref() {
                    None => false,
                    Some("all") => true,
                    Some(other) => {
                        return Err(bad("classes", format!("expected \"all\", found {other:?}")));
                    }
                },
            },
        };
        let mut extra: Vec<&str> = raw.present().filter(|k| !keys.contains(k)).collect();
        extra.sort_unstable();
        if let Some(key) = extra.first() {
            return Err(FieldError::unknown(*key).into());
        }
        Ok(Step { vcpu, kind })
    }
}

fn bad(path: &str, message: String) -> Invalid {
    FieldError::bad_value(path, message).into()
}

fn required<T>(key: &str, v: Option<T>) -> Result<T, Invalid> {
    v.ok_or_else(|| FieldError::missing(key).into())
}

/// A vCPU index below `limit`.
fn index(path: &str, Number(n): Number, limit: usize) -> Result<usize, Invalid> {
    match usize::try_from(n) {
        Ok(i) if i < limit => Ok(i),
        _ => Err(bad(
            path,
            format!("{n} is out of range (0 to {})", limit - 1),
        )),
    }
}

fn below_2_32(path: &str, Number(n): Number) -> Result<u32, Invalid> {
    u32::try_from(n).map_err(|_| bad(path, format!("{n:#x} is not below 2^32")))
}

/// `reg`: a firmware register name (exact) or, as a string starting with `0x`, any ONE_REG id
/// under the number rule. A JSON integer is not a register.
#[derive(Clone, Copy)]
struct RegId(u64);

impl<'de> Deserialize<'de> for RegId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RegId;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a register name or a 0x id")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RegId, E> {
                if s.starts_with("0x") {
                    return Number::deserialize(de::value::StrDeserializer::<E>::new(s))
                        .map(|n| RegId(n.0));
                }
                FwReg::from_name(s)
                    .map(|r| RegId(r.id()))
                    .ok_or_else(|| E::custom(format!("{s:?} is not a firmware register name")))
            }
        }
        d.deserialize_any(V)
    }
}

/// `action`: `handle`, `deny`, `forward`, or a JSON number from 0 to 255.
#[derive(Clone, Copy)]
struct FilterAction(u8);

/// The action names, by value.
const FILTER_ACTIONS: [&str; 3] = ["handle", "deny", "forward"];

impl<'de> Deserialize<'de> for FilterAction {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = FilterAction;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<FilterAction, E> {
                FILTER_ACTIONS
                    .iter()
                    .position(|&a| a == s)
                    .and_then(|v| u8::try_from(v).ok())
                    .map(FilterAction)
                    .ok_or_else(|| {
                        E::custom(format!(
                            "expected handle, deny, forward or a number, found {s:?}"
                        ))
                    })
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<FilterAction, E> {
                u8::try_from(n)
                    .map(FilterAction)
                    .map_err(|_| E::custom(format!("{n} is not 0 to 255")))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<FilterAction, E> {
                Number::deserialize(de::value::I64Deserializer::<E>::new(n))
                    .and_then(|n| self.visit_u64(n.0))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<FilterAction, E> {
                Number::deserialize(de::value::F64Deserializer::<E>::new(n))
                    .and_then(|n| self.visit_u64(n.0))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests;
