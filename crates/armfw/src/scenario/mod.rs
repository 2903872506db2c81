//! The scenario contract (scenario format version 1): one JSON file says what a VMM does to
//! one VM, step by step; any [`Backend`] runs it and gives a [`ResultDocument`]. The model
//! ([`ModelBackend`]) is right exactly when its document equals a real kernel's, field for
//! field, the `target` object aside ([`ResultDocument::conforms_to`]).
//!
//! How this implementation reads the places where the format leaves a choice:
//! - A file that is not JSON, is not an object, lacks `name` or `steps`, has a `name` other
//!   than its file name without `.json`, has a top-level key other than `name`, `vm` and
//!   `steps`, or gives a key twice in any object is not a scenario: [`parse`] refuses it and
//!   no document is made. Files are read by [`crate::json::from_str`]; documents are written
//!   through `Serialize` (`serde_json::to_string(&doc)`).
//! - A malformed `vm` object gives the document `results: [{"error": ...}]`; a malformed step
//!   ends the scenario with `{"error": ...}` at its place, after the steps before it ran.
//! - `smccc_filter` in a scenario with `"firmware": "armfw"` is a malformed step.
//! - `entry` is malformed on a vCPU that has run a call since its last reset. A reset is the
//!   vCPU's creation, or a CPU_ON call (0.1, SMC32 or SMC64 id) that returned SUCCESS and
//!   named it (x1, narrowed to 32 bits for the SMC32 id). Both backends apply this rule from
//!   the results alone, so they agree on it.
//! - One op beyond the format, which the format has no way to say: `{"op": "counter_offset",
//!   "value": N}` is KVM_ARM_SET_COUNTER_OFFSET on the VM (`counter_offset` = N, `reserved`
//!   0; `vcpu` is ignored), with the result `{"ok": true}` or `{"errno": ...}`. Kernels
//!   without the ioctl (before 6.4) answer EINVAL.

mod model;
mod parse;
mod result;

pub use model::{ModelBackend, ModelServices};
pub use parse::{FirmwareMode, ParseError, Scenario, Step, StepKind, VmSpec, parse};
pub use result::{CallResult, Mismatch, ResultDocument, StepResult};

use crate::abi::psci::{KVM_PSCI_FN_CPU_ON, PSCI_0_2_FN_CPU_ON, PSCI_0_2_FN64_CPU_ON};
use crate::abi::reg_u32;
use crate::abi::{Errno, Mpidr, OneRegId};
use crate::firmware::Conduit;

/// What a scenario needs from a VMM: one method per step kind. A backend owns one VM at a
/// time, created by [`Backend::create_vm`]. `Err(String)` means the step cannot be answered
/// (KVM_RUN failed or ended in an unexpected way, or the backend cannot serve it): it ends the
/// scenario with an `error` result.
pub trait Backend {
    /// The `target` object of result documents: `backend` and what answered.
    fn target(&self) -> serde_json::Value;
    /// Create the VM and its vCPUs as `vm` says; replaces any previous VM.
    fn create_vm(&mut self, vm: &VmSpec) -> Result<(), String>;
    /// KVM_GET_REG_LIST on `vcpu` (all ids, KVM's order).
    fn reg_list(&mut self, vcpu: usize) -> Result<Result<Vec<u64>, Errno>, String>;
    /// KVM_GET_ONE_REG into a buffer of the id's size; the buffer's bytes.
    fn get(&mut self, vcpu: usize, id: u64) -> Result<Result<Vec<u8>, Errno>, String>;
    /// KVM_SET_ONE_REG from `data`, which has the id's size.
    fn set(&mut self, vcpu: usize, id: u64, data: &[u8]) -> Result<Result<(), Errno>, String>;
    /// The guest on `vcpu` runs `hvc #0` or `smc #0` with x0..x3 = `x`.
    fn call(&mut self, vcpu: usize, conduit: Conduit, x: [u64; 4]) -> Result<CallResult, String>;
    /// PC and x0 of `vcpu`, read without running it.
    fn entry(&mut self, vcpu: usize) -> Result<(u64, u64), String>;
    /// KVM_GET_MP_STATE (the raw value).
    fn mp_state(&mut self, vcpu: usize) -> Result<u32, String>;
    /// KVM_SET_MP_STATE with a raw value.
    fn set_mp_state(&mut self, vcpu: usize, state: u32) -> Result<Result<(), Errno>, String>;
    /// KVM_SET_DEVICE_ATTR(KVM_ARM_VM_SMCCC_FILTER) with a zero pad.
    fn smccc_filter(
        &mut self,
        base: u32,
        count: u32,
        action: u8,
    ) -> Result<Result<(), Errno>, String>;
    /// KVM_ARM_SET_COUNTER_OFFSET with `reserved` zero.
    fn counter_offset(&mut self, offset: u64) -> Result<Result<(), Errno>, String>;
}

/// Run `scenario` on `backend`: the result document.
pub fn run(scenario: &Scenario, backend: &mut dyn Backend) -> ResultDocument {
    let results = run_steps(scenario, backend);
    ResultDocument {
        scenario: scenario.name.clone(),
        target: backend.target(),
        results,
    }
}

fn run_steps(scenario: &Scenario, backend: &mut dyn Backend) -> Vec<StepResult> {
    let vm = match &scenario.vm {
        Ok(vm) => vm,
        Err(e) => return vec![StepResult::Error(e.to_string())],
    };
    if let Err(e) = backend.create_vm(vm) {
        return vec![StepResult::Error(format!("VM setup failed: {e}"))];
    }
    let mut called_since_reset = vec![false; vm.vcpus];
    let mut results = Vec::new();
    for (i, step) in scenario.steps.iter().enumerate() {
        let r = match step {
            Err(e) => Err(e.to_string()),
            Ok(step) => match check_step(i, step, vm, &called_since_reset) {
                Err(e) => Err(e),
                Ok(()) => run_step(step, backend, vm, &mut called_since_reset),
            },
        };
        match r {
            Ok(res) => results.push(res),
            Err(e) => {
                results.push(StepResult::Error(e));
                break;
            }
        }
    }
    results
}

fn check_step(i: usize, step: &Step, vm: &VmSpec, called: &[bool]) -> Result<(), String> {
    if step.vcpu >= vm.vcpus {
        return Err(format!(
            "steps[{i}].vcpu: {} is not below vcpus ({})",
            step.vcpu, vm.vcpus
        ));
    }
    match &step.kind {
        StepKind::Entry if called[step.vcpu] => Err(format!(
            "steps[{i}]: entry on vCPU {} which has run a call since its last reset",
            step.vcpu
        )),
        StepKind::SmcccFilter { .. } if vm.firmware == FirmwareMode::Armfw => Err(format!(
            "steps[{i}]: smccc_filter is not allowed with \"firmware\": \"armfw\""
        )),
        _ => Ok(()),
    }
}

fn run_step(
    step: &Step,
    backend: &mut dyn Backend,
    vm: &VmSpec,
    called: &mut [bool],
) -> Result<StepResult, String> {
    let vcpu = step.vcpu;
    Ok(match &step.kind {
        StepKind::RegList { all } => match backend.reg_list(vcpu)? {
            Ok(ids) => StepResult::Regs(
                ids.into_iter()
                    .filter(|&id| *all || OneRegId(id).is_firmware_class())
                    .collect(),
            ),
            Err(e) => StepResult::Errno(e),
        },
        StepKind::Get { reg } => match backend.get(vcpu, *reg)? {
            Ok(bytes) => StepResult::Value(bytes),
            Err(e) => StepResult::Errno(e),
        },
        StepKind::Set { reg, value } => match backend.set(vcpu, *reg, value)? {
            Ok(()) => StepResult::Ok,
            Err(e) => StepResult::Errno(e),
        },
        StepKind::Call { conduit, x } => {
            let r = backend.call(vcpu, *conduit, *x)?;
            called[vcpu] = true;
            if let Some(t) = cpu_on_target(x, &r, vm.vcpus) {
                called[t] = false;
            }
            StepResult::Call(r)
        }
        StepKind::Entry => {
            let (pc, x0) = backend.entry(vcpu)?;
            StepResult::Entry { pc, x0 }
        }
        StepKind::MpState => StepResult::MpState(backend.mp_state(vcpu)?),
        StepKind::SetMpState { state } => match backend.set_mp_state(vcpu, *state)? {
            Ok(()) => StepResult::Ok,
            Err(e) => StepResult::Errno(e),
        },
        StepKind::SmcccFilter {
            base,
            count,
            action,
        } => match backend.smccc_filter(*base, *count, *action)? {
            Ok(()) => StepResult::Ok,
            Err(e) => StepResult::Errno(e),
        },
        StepKind::CounterOffset { offset } => match backend.counter_offset(*offset)? {
            Ok(()) => StepResult::Ok,
            Err(e) => StepResult::Errno(e),
        },
    })
}

/// The vCPU a successful CPU_ON call started, if the call was one.
fn cpu_on_target(x: &[u64; 4], r: &CallResult, vcpus: usize) -> Option<usize> {
    let CallResult::Returned { x: out } = r else {
        return None;
    };
    if out[0] != 0 {
        return None;
    }
    let target = match reg_u32(x[0]) {
        PSCI_0_2_FN_CPU_ON => x[1] & 0xffff_ffff,
        PSCI_0_2_FN64_CPU_ON | KVM_PSCI_FN_CPU_ON => x[1],
        _ => return None,
    };
    (0..vcpus).find(|&i| Mpidr::for_vcpu_index(i).0 == target & Mpidr::MPIDR_HWID_BITMASK)
}
