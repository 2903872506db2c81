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
use crate::abi::vcpu_reg::sysreg_id;
use crate::abi::{Errno, OneRegId};
use crate::compat::{Report, Verdict};
use crate::firmware::Firmware;
use crate::migrate::ModelVm;
use crate::migrate::sequence::{self, RestoreStop, VmmPolicy, Writes};
use crate::snapshot::Step;
use crate::vcpu::{VcpuSetup, VcpuTemplate};
use std::sync::Arc;

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
    // The three restores make the same vCPUs: the destination's registers are decoded once.
    let imp = snapshot.machine().is_some_and(|m| m.writable_imp_id_regs);
    let template = template(snapshot, dest, imp);
    VmmPolicy::ALL
        .iter()
        .map(|&policy| PolicyOutcome {
            policy,
            result: replay(snapshot, dest, template.as_ref(), Writes::Vmm(policy)),
        })
        .collect()
}

/// The vCPU template of `dest` for the VM `snapshot` describes (its features and SVE
/// lengths, the implementation-id capability `imp`), where the state has the whole-vCPU part
/// and the host takes that set-up.
fn template(snapshot: &Snapshot, dest: &Profile, imp: bool) -> Option<Arc<VcpuTemplate>> {
    let m = snapshot.machine()?;
    let setup = VcpuSetup {
        vcpus: snapshot.vcpus.len(),
        features: m.features,
        sve_vls: m.sve_vls.clone(),
        writable_imp_id_regs: imp,
    };
    VcpuTemplate::new(dest, &setup)?.ok().map(Arc::new)
}

/// [`restore_on_model`] with the destination's vCPUs made from `template` where it fits.
fn replay(
    snapshot: &Snapshot,
    dest: &Profile,
    template: Option<&Arc<VcpuTemplate>>,
    writes: Writes<'_>,
) -> Result<(), RestoreStop> {
    let mut vm = ModelVm::new(Firmware::new(dest));
    if let Some(t) = template {
        vm = vm.with_template(Arc::clone(t));
    }
    sequence::restore_with(&mut vm, snapshot, writes)
}

/// The verdict on a whole VM: compatible when every VMM policy restores it (`vmm_restore`)
/// and its firmware stays the same (`firmware`), compatible with armfw's plan when only the
/// plan restores it, incompatible otherwise.
pub fn verdict(vmm_restore: bool, firmware: Verdict, plan_restores: bool) -> Verdict {
    match (
        vmm_restore && firmware == Verdict::Compatible,
        plan_restores,
    ) {
        (true, _) => Verdict::Compatible,
        (false, true) => Verdict::CompatibleWithPlan,
        (false, false) => Verdict::Incompatible,
    }
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

/// Registers KVM lists only while a feature is present (the visibility functions of
/// `arch/arm64/kvm/sys_regs.c`, 6.13 and later: `tcr2_visibility()`, `s1pie_visibility()`,
/// `s1poe_visibility()`), with the ID-register field that says so: (register, ID register,
/// field shift, field name). A guest reads that field before it uses the register, so where
/// the VM's own ID register shows the feature absent, the register is not observable.
const FEATURE_GATED: [(u64, u64, u32, &str); 5] = [
    (sysreg_id(3, 0, 2, 0, 3), MMFR3, 0, "ID_AA64MMFR3_EL1.TCRX"),
    (
        sysreg_id(3, 0, 10, 2, 2),
        MMFR3,
        8,
        "ID_AA64MMFR3_EL1.S1PIE",
    ),
    (
        sysreg_id(3, 0, 10, 2, 3),
        MMFR3,
        8,
        "ID_AA64MMFR3_EL1.S1PIE",
    ),
    (
        sysreg_id(3, 3, 10, 2, 4),
        MMFR3,
        16,
        "ID_AA64MMFR3_EL1.S1POE",
    ),
    (
        sysreg_id(3, 0, 10, 2, 4),
        MMFR3,
        16,
        "ID_AA64MMFR3_EL1.S1POE",
    ),
];

/// The ID-register field that shows `id`'s feature, where KVM lists `id` only with that
/// feature (the visibility functions of `sys_regs.c`, 6.13+) and the VM's ID_AA64MMFR3_EL1 (`mmfr3`) shows it absent: the
/// guest cannot observe the register.
pub fn unobservable(id: u64, mmfr3: u64) -> Option<&'static str> {
    FEATURE_GATED
        .iter()
        .find(|g| g.0 == id && (mmfr3 >> g.2) & 0xf == 0)
        .map(|g| g.3)
}

/// ID_AA64MMFR3_EL1.
pub const MMFR3: u64 = sysreg_id(3, 0, 0, 7, 3);

/// A saved register of a whole VM that the destination refuses, explained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterFinding {
    /// The register.
    pub id: u64,
    /// The saved value, as a number (hex).
    pub saved: String,
    /// KVM's answer.
    pub errno: Errno,
    /// What the destination accepts, the rule and the remedy.
    pub explanation: super::cpu::RegisterExplanation,
}

/// A register armfw leaves out of a whole-VM restore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The register.
    pub id: u64,
    /// Why the guest cannot observe it: the ID-register field the VM presents as 0.
    pub field: &'static str,
}

/// armfw's plan for a whole-VM state on a destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WholePlan {
    /// The firmware registers' check (their plan is part of this one).
    pub firmware: Report,
    /// Registers the destination does not list and the guest cannot observe: left out.
    pub skipped: Vec<Skipped>,
    /// The ids of `skipped`.
    skip_ids: Vec<u64>,
    /// The plan enables KVM_CAP_ARM_WRITABLE_IMP_ID_REGS on the destination (6.15+), so the
    /// guest keeps the MIDR_EL1, REVIDR_EL1 and AIDR_EL1 it saw.
    pub imp_ids: bool,
    /// Why there is no plan: the guest has seen something the destination cannot present
    /// (each refused operation of a write-all restore that nothing makes safe), or a
    /// firmware refusal. Empty when there is a plan.
    pub refused: Vec<String>,
    /// Each refused register write of `refused` (vCPU 0's, other than the firmware
    /// registers, which `firmware` explains), explained.
    pub findings: Vec<RegisterFinding>,
    /// The plan's restore on the model of the destination, when there is a plan.
    pub result: Option<Result<(), RestoreStop>>,
}

impl WholePlan {
    /// Whether the plan restores the VM.
    pub fn restores(&self) -> bool {
        matches!(self.result, Some(Ok(())))
    }

    /// The restore's writes under this plan.
    pub fn writes(&self) -> Writes<'_> {
        Writes::Plan {
            report: &self.firmware,
            skip: &self.skip_ids,
            imp_ids: self.imp_ids,
            all: false,
        }
    }
}

/// armfw's plan for `snapshot` (with the whole-vCPU part) on `dest`: the firmware plan, the
/// registers the guest cannot observe that the destination does not list left out, every
/// other register written back (the VM-wide ones first); refused where any other write would
/// be refused. The plan's restore is then run on the model.
pub fn plan(snapshot: &Snapshot, dest: &Profile) -> WholePlan {
    let firmware = crate::compat::check(snapshot, dest);
    let mut skipped = Vec::new();
    let mut refused = Vec::new();
    let mut findings = Vec::new();
    if firmware.verdict == Verdict::Incompatible {
        refused.extend(
            firmware
                .findings()
                .filter(|f| f.is_refused())
                .map(|f| format!("{}: {}", f.subject, f.rule.name())),
        );
    }
    let mmfr3 = snapshot
        .machine()
        .and_then(|m| m.value(0, MMFR3))
        .map_or(0, |r| r.low_u64());
    // On a 6.15+ destination the implementation ids become writable with the capability.
    let imp_ids = snapshot.machine().is_some()
        && dest
            .vcpu()
            .is_some_and(|v| v.capabilities.writable_imp_id_regs);
    let every_write = Writes::Plan {
        report: &firmware,
        skip: &[],
        imp_ids,
        all: true,
    };
    let template = template(snapshot, dest, imp_ids);
    match replay(snapshot, dest, template.as_ref(), every_write) {
        Ok(()) => {}
        Err(RestoreStop::QemuIdSet(_)) => {}
        Err(RestoreStop::Refused(list)) => {
            for r in list {
                let Step::SetOneReg { id, .. } = r.step else {
                    refused.push(format!("{}: {}", r.step, r.errno));
                    continue;
                };
                if OneRegId(id).is_firmware_class() || skipped.iter().any(|s: &Skipped| s.id == id)
                {
                    continue;
                }
                match (r.errno, unobservable(id, mmfr3)) {
                    (Errno::ENOENT, Some(field)) => skipped.push(Skipped { id, field }),
                    _ => {
                        refused.push(format!("{}: {}", r.step, r.errno));
                        let vcpu0 = matches!(r.step, Step::SetOneReg { vcpu: 0, .. });
                        if let (true, Some(m)) = (vcpu0, snapshot.machine()) {
                            let value = m.value(0, id).map_or(0, |v| v.low_u64());
                            findings.push(RegisterFinding {
                                id,
                                saved: saved_text(snapshot, 0, id).unwrap_or_default(),
                                errno: r.errno,
                                explanation: super::cpu::explain_refusal(
                                    dest, m.features, id, value, r.errno,
                                ),
                            });
                        }
                    }
                }
            }
        }
    }
    let skip_ids: Vec<u64> = skipped.iter().map(|s| s.id).collect();
    let mut plan = WholePlan {
        firmware,
        skipped,
        skip_ids,
        imp_ids,
        refused,
        findings,
        result: None,
    };
    if plan.refused.is_empty() {
        plan.result = Some(replay(snapshot, dest, template.as_ref(), plan.writes()));
    }
    plan
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
    /// armfw's plan.
    pub plan: WholePlanJson,
}

/// armfw's whole-VM plan in `armfw check --json`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WholePlanJson {
    /// `restores` or `refused`.
    pub result: String,
    /// Registers left out: `{id, register, field}` (the ID-register field the VM presents
    /// as 0).
    pub skipped: Vec<SkippedJson>,
    /// Why there is no plan (one line each).
    pub refused: Vec<String>,
    /// The plan enables KVM_CAP_ARM_WRITABLE_IMP_ID_REGS on the destination.
    pub writable_imp_id_regs: bool,
    /// Each refused register (of vCPU 0, firmware registers apart), explained.
    pub findings: Vec<RegisterFindingJson>,
}

/// A refused register of a whole VM, explained.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterFindingJson {
    /// The id.
    pub id: String,
    /// Its architectural name.
    pub register: String,
    /// The saved value.
    pub saved: String,
    /// What the destination accepts instead.
    pub accepts: String,
    /// The rule.
    pub rule: String,
    /// Always `refuse`.
    pub outcome: String,
    /// What would make the move possible.
    pub remedy: String,
    /// KVM's answer to the write.
    pub errno: String,
}

/// A register left out.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkippedJson {
    /// The id.
    pub id: String,
    /// Its architectural name.
    pub register: String,
    /// The ID-register field that shows the feature absent.
    pub field: String,
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
    pub fn new(snapshot: &Snapshot, outcomes: &[PolicyOutcome], plan: &WholePlan) -> WholeVmJson {
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
            plan: WholePlanJson {
                result: if plan.restores() {
                    "restores"
                } else {
                    "refused"
                }
                .to_string(),
                skipped: plan
                    .skipped
                    .iter()
                    .map(|s| SkippedJson {
                        id: crate::json::hex(s.id),
                        register: crate::vcpu::names::reg_name(s.id),
                        field: s.field.to_string(),
                    })
                    .collect(),
                refused: match &plan.result {
                    Some(Err(stop)) => vec![stop_line(stop)],
                    _ => plan.refused.clone(),
                },
                writable_imp_id_regs: plan.imp_ids,
                findings: plan
                    .findings
                    .iter()
                    .map(|f| RegisterFindingJson {
                        id: crate::json::hex(f.id),
                        register: crate::vcpu::names::reg_name(f.id),
                        saved: f.saved.clone(),
                        accepts: f.explanation.accepts.clone(),
                        rule: f.explanation.rule.to_string(),
                        outcome: "refuse".to_string(),
                        remedy: f.explanation.remedy.clone(),
                        errno: f.errno.to_string(),
                    })
                    .collect(),
            },
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

/// A restore's stop in one line: each refused operation with its errno, or QEMU's refusal.
pub fn stop_line(stop: &RestoreStop) -> String {
    match stop {
        RestoreStop::Refused(list) => list
            .iter()
            .map(|r| format!("{}: {}", r.step, r.errno.name()))
            .collect::<Vec<_>>()
            .join("; "),
        RestoreStop::QemuIdSet(ids) => qemu_ids_text(ids),
    }
}
