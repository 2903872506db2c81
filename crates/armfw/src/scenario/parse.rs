//! Reading scenario files.

use serde_json::Value;

use crate::abi::FwReg;
use crate::firmware::{Conduit, KVM_MP_STATE_NAMES};
use crate::json::{FieldError, Obj, err, kind, number};

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
#[derive(Clone, Debug, PartialEq, Eq)]
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
}

impl Default for VmSpec {
    fn default() -> Self {
        VmSpec {
            vcpus: 1,
            psci_0_2: true,
            power_off: Vec::new(),
            system_suspend: false,
            firmware: FirmwareMode::Kernel,
        }
    }
}

/// One step: the vCPU it addresses and what it does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The vCPU index (default 0).
    pub vcpu: usize,
    /// What the VMM does.
    pub kind: StepKind,
}

/// What a step does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepKind {
    /// KVM_GET_REG_LIST, firmware ids only.
    RegList,
    /// KVM_GET_ONE_REG.
    Get {
        /// The ONE_REG id.
        reg: u64,
    },
    /// KVM_SET_ONE_REG.
    Set {
        /// The ONE_REG id.
        reg: u64,
        /// The value, written little-endian in the id's size.
        value: u64,
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
}

/// A parsed scenario. A malformed `vm` or step is kept as its error: it becomes an `error`
/// result at its place when the scenario runs.
#[derive(Clone, Debug, PartialEq, Eq)]
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
pub enum ParseError {
    /// Not JSON.
    #[error("not JSON: {0}")]
    Json(String),
    /// The document's shape is wrong (name, steps, top-level keys).
    #[error(transparent)]
    Field(#[from] FieldError),
}

/// Parse the scenario `text`; `file_stem` (the file name without `.json`) must equal `name`.
pub fn parse(text: &str, file_stem: Option<&str>) -> Result<Scenario, ParseError> {
    let v: Value = serde_json::from_str(text).map_err(|e| ParseError::Json(e.to_string()))?;
    let mut o = Obj::new("", &v)?;
    let name = o.string("name")?.ok_or_else(|| FieldError {
        kind: crate::json::FieldErrorKind::MissingField,
        path: "name".into(),
        message: "missing".into(),
    })?;
    if let Some(stem) = file_stem {
        if name != stem {
            return Err(FieldError {
                kind: crate::json::FieldErrorKind::BadValue,
                path: "name".into(),
                message: format!("{name:?} is not the file name {stem:?}"),
            }
            .into());
        }
    }
    let vm = match o.get("vm") {
        None => Ok(VmSpec::default()),
        Some(v) => parse_vm(v),
    };
    let steps_v = o.array("steps")?.ok_or_else(|| FieldError {
        kind: crate::json::FieldErrorKind::MissingField,
        path: "steps".into(),
        message: "missing".into(),
    })?;
    o.finish()?;
    let steps = steps_v
        .iter()
        .enumerate()
        .map(|(i, s)| parse_step(&format!("steps[{i}]"), s))
        .collect();
    Ok(Scenario {
        name: name.to_string(),
        vm,
        steps,
    })
}

fn index(path: &str, v: &Value, limit: usize) -> Result<usize, FieldError> {
    let n = number(path, v)?;
    match usize::try_from(n) {
        Ok(i) if i < limit => Ok(i),
        _ => err(path, format!("{n} is out of range (0 to {})", limit - 1)),
    }
}

fn parse_vm(v: &Value) -> Result<VmSpec, FieldError> {
    let mut o = Obj::new("vm", v)?;
    let mut vm = VmSpec::default();
    if let Some(n) = o.number("vcpus")? {
        if n == 0 || n > MAX_SCENARIO_VCPUS as u64 {
            return err(
                "vm.vcpus",
                format!("{n} is out of range (1 to {MAX_SCENARIO_VCPUS})"),
            );
        }
        vm.vcpus = n as usize;
    }
    if let Some(b) = o.bool("psci_0_2")? {
        vm.psci_0_2 = b;
    }
    if let Some(list) = o.array("power_off")? {
        for (i, e) in list.iter().enumerate() {
            let path = format!("vm.power_off[{i}]");
            let idx = index(&path, e, vm.vcpus)?;
            if vm.power_off.contains(&idx) {
                return err(&path, format!("vCPU {idx} is listed twice"));
            }
            vm.power_off.push(idx);
        }
    }
    if let Some(b) = o.bool("system_suspend")? {
        vm.system_suspend = b;
    }
    match o.string("firmware")? {
        None | Some("kernel") => {}
        Some("armfw") => vm.firmware = FirmwareMode::Armfw,
        Some(other) => {
            return err(
                "vm.firmware",
                format!("expected \"kernel\" or \"armfw\", found {other:?}"),
            );
        }
    }
    o.finish()?;
    Ok(vm)
}

fn parse_step(path: &str, v: &Value) -> Result<Step, FieldError> {
    let mut o = Obj::new(path, v)?;
    let op_path = o.path("op");
    let op = o.string("op")?.ok_or_else(|| FieldError {
        kind: crate::json::FieldErrorKind::MissingField,
        path: op_path.clone(),
        message: "missing".into(),
    })?;
    let vcpu_path = o.path("vcpu");
    let vcpu = match o.get("vcpu") {
        None => 0,
        Some(v) => index(&vcpu_path, v, MAX_SCENARIO_VCPUS)?,
    };
    let kind = match op {
        "reg_list" => StepKind::RegList,
        "get" => StepKind::Get { reg: reg(&mut o)? },
        "set" => {
            let reg = reg(&mut o)?;
            let value_path = o.path("value");
            let value = o.number("value")?.ok_or_else(|| FieldError {
                kind: crate::json::FieldErrorKind::MissingField,
                path: value_path.clone(),
                message: "missing".into(),
            })?;
            let size = crate::abi::OneRegId(reg).size_bytes();
            if size < 8 && value >> (8 * size) != 0 {
                return err(
                    &value_path,
                    format!("{value:#x} does not fit the register's {size}-byte buffer"),
                );
            }
            StepKind::Set { reg, value }
        }
        "call" => {
            let x_path = o.path("x");
            let list = o.array("x")?.ok_or_else(|| FieldError {
                kind: crate::json::FieldErrorKind::MissingField,
                path: x_path.clone(),
                message: "missing".into(),
            })?;
            if list.len() > 4 {
                return err(
                    &x_path,
                    format!("has {} entries; at most 4 (x0..x3)", list.len()),
                );
            }
            let mut x = [0u64; 4];
            for (i, e) in list.iter().enumerate() {
                x[i] = number(&format!("{x_path}[{i}]"), e)?;
            }
            let conduit = match o.string("conduit")? {
                None | Some("hvc") => Conduit::Hvc,
                Some("smc") => Conduit::Smc,
                Some(other) => {
                    return err(
                        &o.path("conduit"),
                        format!("expected \"hvc\" or \"smc\", found {other:?}"),
                    );
                }
            };
            StepKind::Call { conduit, x }
        }
        "entry" => StepKind::Entry,
        "mp_state" => StepKind::MpState,
        "set_mp_state" => {
            let p = o.path("mp_state");
            let name = o.string("mp_state")?.ok_or_else(|| FieldError {
                kind: crate::json::FieldErrorKind::MissingField,
                path: p.clone(),
                message: "missing".into(),
            })?;
            let Some(&(_, state)) = KVM_MP_STATE_NAMES.iter().find(|(n, _)| *n == name) else {
                return err(&p, format!("{name:?} is not a KVM_MP_STATE_* name"));
            };
            StepKind::SetMpState { state }
        }
        "smccc_filter" => {
            let mut u32_field = |key: &'static str| -> Result<u32, FieldError> {
                let p = o.path(key);
                let n = o.number(key)?.ok_or_else(|| FieldError {
                    kind: crate::json::FieldErrorKind::MissingField,
                    path: p.clone(),
                    message: "missing".into(),
                })?;
                u32::try_from(n).or_else(|_| err(&p, format!("{n:#x} is not below 2^32")))
            };
            let base = u32_field("base")?;
            let count = u32_field("count")?;
            let ap = o.path("action");
            let action = match o.required("action")? {
                Value::String(s) => match s.as_str() {
                    "handle" => 0,
                    "deny" => 1,
                    "forward" => 2,
                    other => {
                        return err(
                            &ap,
                            format!("expected handle, deny, forward or a number, found {other:?}"),
                        );
                    }
                },
                other @ Value::Number(_) => {
                    let n = number(&ap, other)?;
                    u8::try_from(n).or_else(|_| err(&ap, format!("{n} is not 0 to 255")))?
                }
                other => {
                    return err(
                        &ap,
                        format!("expected a string or a number, found {}", kind(other)),
                    );
                }
            };
            StepKind::SmcccFilter {
                base,
                count,
                action,
            }
        }
        other => return err(&op_path, format!("unknown op {other:?}")),
    };
    o.finish()?;
    Ok(Step { vcpu, kind })
}

fn reg(o: &mut Obj<'_>) -> Result<u64, FieldError> {
    let p = o.path("reg");
    match o.required("reg")? {
        Value::String(s) if s.starts_with("0x") => number(&p, &Value::String(s.clone())),
        Value::String(s) => FwReg::from_name(s)
            .map(FwReg::id)
            .ok_or_else(|| FieldError {
                kind: crate::json::FieldErrorKind::BadValue,
                path: p.clone(),
                message: format!("{s:?} is not a firmware register name"),
            }),
        other => err(
            &p,
            format!("expected a register name or a 0x id, found {}", kind(other)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_step(step: &str) -> Result<Step, FieldError> {
        let s = parse(&format!(r#"{{"name":"t","steps":[{step}]}}"#), Some("t")).unwrap();
        s.steps.into_iter().next().unwrap()
    }

    #[test]
    fn parse_reads_the_example_of_the_format() {
        let s = parse(
            r#"{"name": "cpu_on_then_affinity",
                "vm": {"vcpus": 2, "psci_0_2": true, "power_off": [1], "system_suspend": false, "firmware": "kernel"},
                "steps": [
                  {"op": "call", "vcpu": 0, "x": ["0xc4000003", "0x1", "0x40001000", "0x55"]},
                  {"op": "entry", "vcpu": 1},
                  {"op": "call", "vcpu": 0, "x": ["0xc4000004", "0x1", "0x0"]}]}"#,
            Some("cpu_on_then_affinity"),
        )
        .unwrap();
        let vm = s.vm.unwrap();
        assert_eq!(vm.vcpus, 2);
        assert_eq!(vm.power_off, vec![1]);
        assert_eq!(s.steps.len(), 3);
        assert_eq!(
            s.steps[0],
            Ok(Step {
                vcpu: 0,
                kind: StepKind::Call {
                    conduit: Conduit::Hvc,
                    x: [0xc400_0003, 1, 0x4000_1000, 0x55]
                }
            })
        );
    }

    #[test]
    fn parse_refuses_a_name_other_than_the_file_name() {
        let e = parse(r#"{"name":"a","steps":[]}"#, Some("b")).unwrap_err();
        assert_eq!(e.to_string(), r#"name: "a" is not the file name "b""#);
    }

    #[test]
    fn parse_refuses_unknown_top_level_keys() {
        assert!(parse(r#"{"name":"a","steps":[],"comment":1}"#, None).is_err());
    }

    #[test]
    fn step_with_a_typo_key_is_malformed() {
        let e = one_step(r#"{"op":"mp_state","vpcu":1}"#).unwrap_err();
        assert_eq!(e.path, "steps[0].vpcu");
    }

    #[test]
    fn step_register_names_are_exact() {
        assert_eq!(
            one_step(r#"{"op":"get","reg":"PSCI_VERSION"}"#)
                .unwrap()
                .kind,
            StepKind::Get {
                reg: 0x6030_0000_0014_0000
            }
        );
        assert!(one_step(r#"{"op":"get","reg":"psci_version"}"#).is_err());
        assert_eq!(
            one_step(r#"{"op":"get","reg":"0x6020000000140000"}"#)
                .unwrap()
                .kind,
            StepKind::Get {
                reg: 0x6020_0000_0014_0000
            }
        );
    }

    #[test]
    fn set_value_must_fit_the_buffer() {
        assert!(
            one_step(r#"{"op":"set","reg":"0x6020000000140000","value":"0x100000000"}"#).is_err()
        );
        assert!(
            one_step(r#"{"op":"set","reg":"0x6020000000140000","value":"0xffffffff"}"#).is_ok()
        );
        assert!(one_step(r#"{"op":"set","reg":"0x6000000000140000","value":256}"#).is_err());
    }

    #[test]
    fn call_takes_at_most_four_registers() {
        assert!(one_step(r#"{"op":"call","x":[1,2,3,4,5]}"#).is_err());
        assert!(one_step(r#"{"op":"call","x":[]}"#).is_ok());
        assert!(one_step(r#"{"op":"call","x":[1],"conduit":"svc"}"#).is_err());
    }

    #[test]
    fn filter_fields_are_32_bit_and_actions_are_named_or_numbers() {
        assert_eq!(
            one_step(r#"{"op":"smccc_filter","base":"0x84000000","count":1,"action":"deny"}"#)
                .unwrap()
                .kind,
            StepKind::SmcccFilter {
                base: 0x8400_0000,
                count: 1,
                action: 1
            }
        );
        assert!(
            one_step(r#"{"op":"smccc_filter","base":"0x100000000","count":1,"action":0}"#).is_err()
        );
        assert!(one_step(r#"{"op":"smccc_filter","base":0,"count":1,"action":256}"#).is_err());
        assert!(one_step(r#"{"op":"smccc_filter","base":0,"count":1,"action":"drop"}"#).is_err());
    }

    #[test]
    fn set_mp_state_takes_any_kvm_name() {
        assert_eq!(
            one_step(r#"{"op":"set_mp_state","mp_state":"HALTED"}"#)
                .unwrap()
                .kind,
            StepKind::SetMpState { state: 3 }
        );
        assert!(one_step(r#"{"op":"set_mp_state","mp_state":"OFF"}"#).is_err());
    }

    #[test]
    fn vm_errors_are_kept_for_the_result() {
        let s = parse(r#"{"name":"t","vm":{"vcpus":65},"steps":[]}"#, None).unwrap();
        assert_eq!(s.vm.unwrap_err().path, "vm.vcpus");
        let s = parse(
            r#"{"name":"t","vm":{"vcpus":2,"power_off":[2]},"steps":[]}"#,
            None,
        )
        .unwrap();
        assert_eq!(s.vm.unwrap_err().path, "vm.power_off[0]");
    }
}
