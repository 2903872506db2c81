//! CPU baselines: the CPU every host of a pool can present to a guest (see [`cpu_baseline`]).
//!
//! A guest reads its CPU from the ID registers, the implementation ids (MIDR_EL1, REVIDR_EL1,
//! AIDR_EL1), CTR_EL0 and the cache geometry (CLIDR_EL1 and the CCSIDR_EL1 demux). A VM that
//! moves keeps those values: the restore writes them back, and the destination's KVM judges
//! each write by its own rules ([`crate::vcpu::rules`]). A VM created with values every host
//! of a pool accepts can therefore move to every host of the pool with its view unchanged.
//!
//! Every acceptance here is asked of the model ([`VcpuModel::set`]), the code that answers
//! KVM_SET_ONE_REG for the model VM and the predictions: the baseline has no rule of its own.

use crate::abi::vcpu_reg::{SVE_VLS, sysreg_id};
use crate::abi::{CpuFeature, CpuFeatures, FwReg, OneRegId};
use crate::firmware::Implementation;
use crate::profile::Profile;
use crate::register;
use crate::vcpu::names::reg_name;
use crate::vcpu::rules;
use crate::vcpu::{VcpuModel, after_first_run};

/// One part of a CPU-describing register on which the hosts of a pool differ, and the value
/// the baseline gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldChoice {
    /// The register's ONE_REG id.
    pub id: u64,
    /// The field's name as the kernel's table spells it, `other bits` for the bits no field
    /// covers, `value` for a register judged whole.
    pub field: &'static str,
    /// The field's bits in the register.
    pub mask: u64,
    /// The baseline's bits (inside `mask`).
    pub value: u64,
    /// The distinct host values (inside `mask`), each with the first host (index in the pool)
    /// that has it, in pool order.
    pub hosts: Vec<(u64, usize)>,
    /// How the value was chosen.
    pub rule: &'static str,
}

impl FieldChoice {
    /// `ID_AA64ISAR0_EL1.AES` and the like.
    pub fn name(&self) -> String {
        if self.field == "value" {
            reg_name(self.id)
        } else {
            format!("{}.{}", reg_name(self.id), self.field)
        }
    }
}

/// A host the baseline leaves out, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeftOut {
    /// The host's index in the pool.
    pub host: usize,
    /// The first value it cannot present: register and field, its own value, the pool's,
    /// and the rule of its kernel that refuses the change.
    pub reason: String,
}

/// What a VM needs at creation on one host to present the baseline's CPU: the set-up before
/// the first KVM_RUN and the register writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuRecipe {
    /// The vCPU features (KVM_ARM_VCPU_INIT).
    pub features: CpuFeatures,
    /// With SVE, the SVE_VLS value to write before KVM_ARM_VCPU_FINALIZE.
    pub sve_vls: Option<Vec<u8>>,
    /// Enable KVM_CAP_ARM_WRITABLE_IMP_ID_REGS before the vCPUs exist (the implementation
    /// ids differ from this host's).
    pub writable_imp_id_regs: bool,
    /// The registers whose value differs from this host's, with the baseline's value, in
    /// the pool's list order: the VM-wide ones are written on vCPU 0, the others (the cache
    /// geometry) on every vCPU.
    pub writes: Vec<(u64, u64)>,
}

/// The CPU every kept host of a pool can present, from [`cpu_baseline`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuBaseline {
    /// How many hosts the pool has.
    pub hosts: usize,
    /// The vCPU features of the baseline's VMs.
    pub features: CpuFeatures,
    /// With SVE, the vector lengths every kept host offers (the SVE_VLS value).
    pub sve_vls: Option<Vec<u8>>,
    /// Every CPU-describing register on which some kept host differs, with the baseline's
    /// value, in the list order of the first kept host.
    pub registers: Vec<(u64, u64)>,
    /// Every part of those registers on which the kept hosts differ.
    pub fields: Vec<FieldChoice>,
    /// The hosts left out so that the others can be bridged, in the order they were left
    /// out; empty when the baseline covers the whole pool.
    pub left_out: Vec<LeftOut>,
    /// The distinct implementations of the kept hosts, in pool order (what armfw's
    /// firmware reports through DISCOVER_IMPL_CPUS, [`crate::Firmware::set_implementations`]).
    pub implementations: Vec<Implementation>,
    /// Whether a guest can be told the implementations: every kept host lets the VMM set
    /// VENDOR_HYP_BMAP_2 bits 0 and 1 (6.15+), which advertise DISCOVER_IMPL_VER and
    /// DISCOVER_IMPL_CPUS. KVM does not serve the calls: a VMM that serves them in
    /// userspace (armfw's firmware behind the SMCCC filter, forwarding 0xc6000040 and
    /// 0xc6000041) sets the bits and gives the firmware [`CpuBaseline::implementations`].
    pub discover_impl: bool,
}

/// Why a pool has no CPU baseline.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CpuBaselineError {
    /// No hosts.
    #[error("the pool is empty")]
    EmptyPool,
    /// A host's profile has no whole-vCPU part (a version-1 profile).
    #[error("host {host} of the pool has a version-1 profile (no vCPU registers)")]
    NoVcpu {
        /// The host's index in the pool.
        host: usize,
    },
    /// A host was not probed with the baseline's vCPU features.
    #[error("host {host} of the pool was not probed with the vCPU features {features}")]
    FeatureSet {
        /// The host's index in the pool.
        host: usize,
        /// The features.
        features: CpuFeatures,
    },
}

impl CpuBaselineError {
    /// The error with the host named by its profile in `pool`.
    pub fn describe(&self, pool: &[Profile]) -> String {
        let name = |i: usize| pool.get(i).map_or("?", |p| p.name()).to_string();
        match self {
            CpuBaselineError::EmptyPool => self.to_string(),
            CpuBaselineError::NoVcpu { host } => format!(
                "{} has a version-1 profile (no vCPU registers; re-probe the host)",
                name(*host)
            ),
            CpuBaselineError::FeatureSet { host, features } => format!(
                "{} was not probed with the vCPU features {features}",
                name(*host)
            ),
        }
    }
}

/// The vCPU features every host offers: the intersection of each host's largest probed set.
fn common_features(pool: &[Profile]) -> CpuFeatures {
    let mut common: Option<CpuFeatures> = None;
    for p in pool {
        let best = p
            .vcpu()
            .map_or(CpuFeatures::NONE, crate::profile::VcpuProfile::all_features);
        common = Some(common.map_or(best, |c| c.intersect(best)));
    }
    common.unwrap_or(CpuFeatures::NONE)
}

/// The SVE lengths every host offers: KVM takes a set only if it is exactly the host's
/// lengths up to its maximum ([`rules::sve_vls_check`]), so the common set is the host
/// lengths up to the largest length below which every host has the same lengths.
fn common_vls(hosts: &[Host<'_>]) -> Option<Vec<u8>> {
    let sets: Vec<Vec<u8>> = hosts
        .iter()
        .map(|h| h.set.reset(SVE_VLS).and_then(|w| w.fit(64)))
        .collect::<Option<_>>()?;
    let lengths: Vec<Vec<usize>> = sets.iter().map(|s| rules::vls_lengths(s)).collect();
    let first = lengths.first()?;
    let mut max = 0;
    for &vq in first {
        let everywhere = lengths.iter().all(|l| {
            l.contains(&vq)
                && l.iter()
                    .filter(|&&v| v < vq)
                    .eq(first.iter().filter(|&&v| v < vq))
        });
        if !everywhere {
            break;
        }
        max = vq;
    }
    let mut out = sets.first()?.clone();
    for (byte, b) in out.iter_mut().enumerate() {
        for bit in 0..8 {
            if byte * 8 + bit + 1 > max {
                *b &= !(1 << bit);
            }
        }
    }
    Some(out)
}

/// The result of one pass over the kept hosts.
struct Pass {
    registers: Vec<(u64, u64)>,
    fields: Vec<FieldChoice>,
    /// Per kept host (position in the kept list), the reasons it cannot present the pass's
    /// values.
    refusals: Vec<Vec<String>>,
}

fn pass(hosts: &[Host<'_>], models: &mut [VcpuModel]) -> Pass {
    let mut out = Pass {
        registers: Vec::new(),
        fields: Vec::new(),
        refusals: vec![Vec::new(); hosts.len()],
    };
    let Some(first) = hosts.first() else {
        return out;
    };
    for id in first.set.ids() {
        if describes(id).is_none() {
            continue;
        }
        let Some(values) = hosts
            .iter()
            .map(|h| h.value(id))
            .collect::<Option<Vec<u64>>>()
        else {
            // Not listed everywhere: the plan, not the baseline, decides about it.
            continue;
        };
        if values.iter().all(|&v| Some(&v) == values.first()) {
            continue;
        }
        let size = OneRegId(id).size_bytes();
        let size_mask = if size >= 8 {
            u64::MAX
        } else {
            (1u64 << (size * 8)) - 1
        };
        let mut composed = values.first().copied().unwrap_or(0);
        for part in parts(id, size_mask) {
            let bits: Vec<u64> = values.iter().map(|v| v & part.mask).collect();
            if bits.iter().all(|&b| Some(&b) == bits.first()) {
                continue;
            }
            let (rule_value, rule) = derived(id, &part, &bits);
            let mut candidates = vec![rule_value];
            for &b in &bits {
                if !candidates.contains(&b) {
                    candidates.push(b);
                }
            }
            // The candidate the most hosts accept; the rule's own value on a tie.
            let mut best: Option<(u64, Vec<Result<(), Refused>>)> = None;
            for c in candidates {
                let ok: Vec<Result<(), Refused>> = hosts
                    .iter()
                    .zip(models.iter_mut())
                    .zip(&values)
                    .map(|((h, m), &v)| accepts(m, h.set, id, (v & !part.mask) | c, v))
                    .collect();
                let n = ok.iter().filter(|r| r.is_ok()).count();
                if best
                    .as_ref()
                    .is_none_or(|(_, o)| n > o.iter().filter(|r| r.is_ok()).count())
                {
                    best = Some((c, ok));
                }
            }
            let Some((chosen, ok)) = best else { continue };
            let mut distinct: Vec<(u64, usize)> = Vec::new();
            for (h, &b) in hosts.iter().zip(&bits) {
                if !distinct.iter().any(|(v, _)| *v == b) {
                    distinct.push((b, h.index));
                }
            }
            let choice = FieldChoice {
                id,
                field: part.name,
                mask: part.mask,
                value: chosen,
                hosts: distinct,
                rule: if chosen == rule_value {
                    rule
                } else {
                    "the value the most hosts can present"
                },
            };
            for (k, accepted) in ok.iter().enumerate() {
                if let Err(r) = accepted {
                    let (h, own) = (&hosts[k], bits[k]);
                    let why = match r {
                        Refused::Ignored(read) => format!(
                            "the host ignores writes to {} (it reads {read:#x})",
                            reg_name(id)
                        ),
                        Refused::Errno(_) => why_not(h, id, &part),
                    };
                    out.refusals[k].push(format!(
                        "{}: the host has {}, the pool needs {}; {why}",
                        choice.name(),
                        shown(&part, own),
                        shown(&part, chosen),
                    ));
                }
            }
            composed = (composed & !part.mask) | chosen;
            out.fields.push(choice);
        }
        // The register as a whole: the checks that span fields.
        for (k, ((h, m), &v)) in hosts.iter().zip(models.iter_mut()).zip(&values).enumerate() {
            if out.refusals[k].is_empty() {
                match accepts(m, h.set, id, composed, v) {
                    Ok(()) => {}
                    Err(Refused::Errno(errno)) => out.refusals[k].push(format!(
                        "{} = {composed:#x}: {errno} on this host",
                        reg_name(id)
                    )),
                    Err(Refused::Ignored(read)) => out.refusals[k].push(format!(
                        "{} = {composed:#x}: the host ignores the write (it reads {read:#x})",
                        reg_name(id)
                    )),
                }
            }
        }
        out.registers.push((id, composed));
    }
    workaround_levels(hosts, &mut out);
    out
}

/// The WORKAROUND levels: the host's (KVM stores nothing a VM writes), so a VM moves only
/// between hosts at the same level ([`super::Rule::WorkaroundAboveHost`],
/// [`super::Rule::WorkaroundBelowHost`]). Each level as a VM with the pass's ID registers
/// sees it ([`register::vm_level`]: WORKAROUND_2 follows the VM's SSBS), and the level the
/// most hosts have is the pool's.
fn workaround_levels(hosts: &[Host<'_>], out: &mut Pass) {
    const PFR1: u64 = sysreg_id(3, 0, 0, 4, 1);
    let pfr1 = out
        .registers
        .iter()
        .find(|(id, _)| *id == PFR1)
        .map(|r| r.1);
    for reg in [
        FwReg::SmcccArchWorkaround1,
        FwReg::SmcccArchWorkaround2,
        FwReg::SmcccArchWorkaround3,
    ] {
        let levels: Vec<u64> = hosts
            .iter()
            .map(|h| {
                let host_pfr1 = h.value(PFR1).unwrap_or(0);
                let hidden = register::ssbs_hidden(host_pfr1, pfr1.unwrap_or(host_pfr1));
                register::vm_level(reg, h.profile, hidden).unwrap_or(0)
            })
            .collect();
        if levels.iter().all(|&l| Some(&l) == levels.first()) {
            continue;
        }
        let mut distinct: Vec<(u64, usize)> = Vec::new();
        for (h, &l) in hosts.iter().zip(&levels) {
            if !distinct.iter().any(|(v, _)| *v == l) {
                distinct.push((l, h.index));
            }
        }
        let count = |v: u64| levels.iter().filter(|&&l| l == v).count();
        // The level the most hosts have; the first host's on a tie.
        let chosen = distinct
            .iter()
            .map(|&(v, _)| v)
            .fold(None, |best: Option<u64>, v| match best {
                Some(b) if count(b) >= count(v) => Some(b),
                _ => Some(v),
            })
            .unwrap_or(0);
        for (k, &l) in levels.iter().enumerate() {
            if l != chosen {
                out.refusals[k].push(format!(
                    "{reg}: the host is at level {l:#x}, the pool at {chosen:#x}; the level is the host's (KVM stores nothing a VM writes), so a VM moves only between hosts at one level"
                ));
            }
        }
        out.fields.push(FieldChoice {
            id: reg.id(),
            field: "value",
            mask: u64::MAX,
            value: chosen,
            hosts: distinct,
            rule: "the host's level, which the most hosts have",
        });
    }
}

/// The CPU baseline of a pool: the value of every CPU-describing register that every kept
/// host of the pool accepts by its own kernel's rules, for VMs with the vCPU `features`
/// (`None`: every feature every host offers).
///
/// Per field of the kernel's table (`arm64_ftr_bits`) where the hosts differ, the value is
/// the safe one by the field's type as KVM judges it (lower-safe: the lowest host value;
/// higher-safe: the highest; exact: the field's safe value), or, where a host cannot present
/// that (a kernel before 6.7, a field outside the host's writable mask), the value that the
/// most hosts can present. The implementation ids and the cache geometry are judged whole.
/// Hosts that still cannot present the values are left out, one at a time (the one with the
/// most refusals first), until the rest agree; each is named with its first refusal.
pub fn cpu_baseline(
    pool: &[Profile],
    features: Option<CpuFeatures>,
) -> Result<CpuBaseline, CpuBaselineError> {
    if pool.is_empty() {
        return Err(CpuBaselineError::EmptyPool);
    }
    let features = features.unwrap_or_else(|| common_features(pool));
    let (classes, reps) = super::fleet::classes(pool);
    let mut hosts: Vec<Host<'_>> = Vec::with_capacity(reps.len());
    for (c, &r) in reps.iter().enumerate() {
        let profile = &pool[r];
        let vcpu = profile.vcpu().ok_or(CpuBaselineError::NoVcpu { host: r })?;
        let set = vcpu
            .feature_set(features)
            .ok_or(CpuBaselineError::FeatureSet { host: r, features })?;
        hosts.push(Host {
            index: r,
            members: (0..pool.len()).filter(|&h| classes[h] == c).collect(),
            profile,
            set,
        });
    }
    let mut left_out = Vec::new();
    loop {
        let sve_vls = if features.has(CpuFeature::Sve) {
            common_vls(&hosts)
        } else {
            None
        };
        let mut models = Vec::with_capacity(hosts.len());
        let mut unmade = None;
        for (k, h) in hosts.iter().enumerate() {
            match h.model(features, sve_vls.as_ref()) {
                Ok(m) => models.push(m),
                Err(e) => {
                    unmade = Some((k, e));
                    break;
                }
            }
        }
        if let Some((k, e)) = unmade {
            let h = hosts.remove(k);
            for host in h.members {
                left_out.push(LeftOut {
                    host,
                    reason: format!("its vCPUs cannot be set up so: {e}"),
                });
            }
            continue;
        }
        let p = pass(&hosts, &mut models);
        // The host with the most refusals; the later one on a tie.
        let worst = p
            .refusals
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.is_empty())
            .max_by_key(|(k, r)| (r.len(), *k))
            .map(|(k, _)| k);
        match worst {
            Some(k) if hosts.len() > 1 => {
                let reason = p.refusals[k].first().cloned().unwrap_or_default();
                let h = hosts.remove(k);
                for host in h.members {
                    left_out.push(LeftOut {
                        host,
                        reason: reason.clone(),
                    });
                }
            }
            _ => {
                let mut implementations: Vec<Implementation> = Vec::new();
                for h in &hosts {
                    let value = |op1, op2| h.value(sysreg_id(3, op1, 0, 0, op2)).unwrap_or(0);
                    let i = Implementation {
                        midr: value(0, 0),
                        revidr: value(0, 6),
                        aidr: value(1, 7),
                    };
                    if !implementations.contains(&i) {
                        implementations.push(i);
                    }
                }
                let discover_impl = hosts.iter().all(|h| {
                    h.profile
                        .register(FwReg::VendorHypBmap2)
                        .and_then(|r| r.writable)
                        .is_some_and(|w| w & 0x3 == 0x3)
                });
                return Ok(CpuBaseline {
                    hosts: pool.len(),
                    features,
                    sve_vls,
                    registers: p.registers,
                    fields: p.fields,
                    left_out,
                    implementations,
                    discover_impl,
                });
            }
        }
    }
}

impl CpuRecipe {
    /// The set-up part, as the one sequence and a whole-VM save record it.
    pub fn setup(&self) -> crate::migrate::sequence::MachineSetup {
        crate::migrate::sequence::MachineSetup {
            features: self.features,
            sve_vls: self.sve_vls.clone(),
            writable_imp_id_regs: self.writable_imp_id_regs,
            counter_offset: None,
        }
    }
}

impl CpuBaseline {
    /// Whether the host at `index` of the pool is covered (not left out).
    pub fn covers(&self, index: usize) -> bool {
        index < self.hosts && !self.left_out.iter().any(|l| l.host == index)
    }

    /// The creation recipe on `host`: the set-up and the writes that make a new VM there
    /// present the baseline's CPU. On a host of the pool that the baseline covers, KVM accepts
    /// every step; elsewhere the first refused step says why.
    pub fn recipe(&self, host: &Profile) -> CpuRecipe {
        let set = host.vcpu().and_then(|v| v.feature_set(self.features));
        let own =
            |id: u64| set.and_then(|s| s.reset(id).map(|w| after_first_run(s, id, w.low_u64())));
        let writes: Vec<(u64, u64)> = self
            .registers
            .iter()
            .copied()
            .filter(|&(id, v)| own(id) != Some(v))
            .collect();
        CpuRecipe {
            features: self.features,
            sve_vls: self.sve_vls.clone(),
            writable_imp_id_regs: writes
                .iter()
                .any(|&(id, _)| describes(id) == Some(Describes::Imp)),
            writes,
        }
    }
}

mod explain;
mod json;
mod judge;

use judge::{
    Describes, Host, Refused, accepts, derived, describes, parts, shown, shown_bits, why_not,
};

pub use explain::{RegisterExplanation, explain_refusal};
pub use json::{
    CpuBaselineJson, FieldJson, HostValueJson, ImplementationJson, LeftOutJson, RecipeJson,
};
