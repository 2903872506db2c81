//! Whole-VM restores under today's VMMs: what each [`VmmPolicy`] meets when it writes a
//! whole-VM state (format 2.0) back on a destination host.
//!
//! The prediction is the restore itself: [`sequence::restore_with`], the one sequence real
//! vCPUs also go through (`armfw_kvm::migrate`), run against the model of the destination
//! ([`ModelVm`]). So every refused write, its errno and its order are the ones the model of
//! that host's KVM gives, and the conformance harness holds that model against the real
//! kernel.

use crate::Profile;
use crate::Snapshot;
use crate::firmware::Firmware;
use crate::migrate::ModelVm;
use crate::migrate::sequence::{self, RestoreStop, VmmPolicy, Writes};

/// What a restore under one VMM policy meets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyOutcome {
    /// The policy.
    pub policy: VmmPolicy,
    /// `Ok` when KVM accepts every operation, else where it stopped.
    pub result: Result<(), RestoreStop>,
}

impl PolicyOutcome {
    /// Whether the restore succeeds.
    pub fn succeeds(&self) -> bool {
        self.result.is_ok()
    }
}

/// The restore of `snapshot` on `dest` under each of [`VmmPolicy::ALL`], in that order. A
/// snapshot without the whole-vCPU part is restored as its firmware registers alone.
pub fn vmm_outcomes(snapshot: &Snapshot, dest: &Profile) -> Vec<PolicyOutcome> {
    VmmPolicy::ALL
        .iter()
        .map(|&policy| PolicyOutcome {
            policy,
            result: restore_on_model(snapshot, dest, Writes::Vmm(policy)),
        })
        .collect()
}

/// Restore `snapshot` into a new VM on the model of `dest` as `writes` says.
pub fn restore_on_model(
    snapshot: &Snapshot,
    dest: &Profile,
    writes: Writes<'_>,
) -> Result<(), RestoreStop> {
    let mut vm = ModelVm::new(Firmware::new(dest));
    sequence::restore_with(&mut vm, snapshot, writes)
}

/// The `whole_vm` object of `armfw check --json` (docs/schemas/armfw-check-1.schema.json).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WholeVmJson {
    /// The vCPU features of the saved VM.
    pub features: crate::abi::CpuFeatures,
    /// How many registers each vCPU lists on the source.
    pub registers: usize,
    /// One per policy, in [`VmmPolicy::ALL`] order.
    pub policies: Vec<PolicyJson>,
}

/// One policy's outcome.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyJson {
    /// [`VmmPolicy::name`].
    pub policy: String,
    /// [`VmmPolicy::who`].
    pub who: String,
    /// `succeeds`, `refused` (KVM refused operations) or `ids_refused` (QEMU's id-set rule
    /// refused a vCPU before any write).
    pub result: String,
    /// The refused operations, in order.
    pub refusals: Vec<RefusalJson>,
    /// For `ids_refused`: what QEMU says.
    pub ids: Option<String>,
}

/// One refused operation.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefusalJson {
    /// [`Step::name`](crate::snapshot::Step::name).
    pub step: String,
    /// The operation in words (with the register's architectural name).
    pub what: String,
    /// The vCPU, for a vCPU operation.
    pub vcpu: Option<usize>,
    /// The register, for a register write.
    pub id: Option<String>,
    /// The value written, for a register write.
    pub saved: Option<String>,
    /// KVM's answer.
    pub errno: String,
}

/// QEMU's refusal in its own words, with the register's architectural name.
pub fn qemu_ids_text(ids: &sequence::QemuIdSet) -> String {
    match *ids {
        sequence::QemuIdSet::TooMany {
            vcpu,
            incoming,
            destination,
        } => format!(
            "vCPU {vcpu}: {incoming} incoming registers, the destination lists {destination} (\"Failed to load cpu:cpreg_vmstate_array_len\")"
        ),
        sequence::QemuIdSet::Missing { vcpu, id } => format!(
            "vCPU {vcpu}: the destination does not list {} ({})",
            crate::vcpu::names::reg_name(id),
            crate::json::hex(id)
        ),
    }
}

impl WholeVmJson {
    /// The document of `outcomes` for `snapshot` (which has the whole-vCPU part).
    pub fn new(snapshot: &Snapshot, outcomes: &[PolicyOutcome]) -> WholeVmJson {
        let machine = snapshot.machine();
        let policies = outcomes
            .iter()
            .map(|o| {
                let (result, refusals, ids) = match &o.result {
                    Ok(()) => ("succeeds", Vec::new(), None),
                    Err(RestoreStop::QemuIdSet(ids)) => {
                        ("ids_refused", Vec::new(), Some(qemu_ids_text(ids)))
                    }
                    Err(RestoreStop::Refused(list)) => (
                        "refused",
                        list.iter()
                            .map(|r| refusal_json(snapshot, r.step, r.errno))
                            .collect(),
                        None,
                    ),
                };
                PolicyJson {
                    policy: o.policy.name().to_string(),
                    who: o.policy.who().to_string(),
                    result: result.to_string(),
                    refusals,
                    ids,
                }
            })
            .collect();
        WholeVmJson {
            features: machine.map_or(crate::abi::CpuFeatures::NONE, |m| m.features),
            registers: machine.map_or(snapshot.vm().registers.len(), |m| m.reg_list.len()),
            policies,
        }
    }
}

fn refusal_json(
    snapshot: &Snapshot,
    step: crate::snapshot::Step,
    errno: crate::abi::Errno,
) -> RefusalJson {
    let (id, saved) = match step {
        crate::snapshot::Step::SetOneReg { vcpu, id } => {
            (Some(crate::json::hex(id)), saved_text(snapshot, vcpu, id))
        }
        _ => (None, None),
    };
    RefusalJson {
        step: step.name().to_string(),
        what: step.to_string(),
        vcpu: step.vcpu(),
        id,
        saved,
        errno: errno.to_string(),
    }
}

/// The saved value of `id` on `vcpu`, as a number.
pub fn saved_text(snapshot: &Snapshot, vcpu: usize, id: u64) -> Option<String> {
    if let Some(r) = snapshot.vm().registers.iter().find(|r| r.id == id) {
        return Some(crate::json::hex(r.value));
    }
    snapshot
        .machine()?
        .value(vcpu, id)
        .map(|r| crate::json::hex_le_bytes(&r.value))
}
