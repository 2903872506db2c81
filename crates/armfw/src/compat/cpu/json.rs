//! The JSON form of a CPU baseline (the `cpu` object of `armfw-baseline/2`).

use super::{CpuBaseline, shown_bits};
use crate::abi::CpuFeatures;
use crate::profile::Profile;
use crate::vcpu::names::reg_name;

/// The `cpu` object of `armfw baseline --json` (format armfw-baseline/2).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuBaselineJson {
    /// The vCPU features of the baseline's VMs.
    pub features: CpuFeatures,
    /// With SVE, the SVE_VLS value (hex, little-endian bytes as one number).
    pub sve_vls: Option<String>,
    /// The hosts the baseline covers, in pool order.
    pub covered: Vec<String>,
    /// The hosts left out, in the order they were left out, each with its first refusal.
    pub left_out: Vec<LeftOutJson>,
    /// Every part of a CPU-describing register on which the covered hosts differ.
    pub fields: Vec<FieldJson>,
    /// The distinct implementations of the covered hosts (what DISCOVER_IMPL_CPUS lists).
    pub implementations: Vec<ImplementationJson>,
    /// Whether every covered host lets a guest be told them (VENDOR_HYP_BMAP_2, 6.15+).
    pub discover_impl: bool,
    /// Per covered host, what a VM created there needs.
    pub recipes: Vec<RecipeJson>,
}

/// A host left out of the CPU baseline.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeftOutJson {
    /// The host's profile name.
    pub host: String,
    /// Its first refusal.
    pub reason: String,
}

/// One differing field and the baseline's value.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldJson {
    /// The register's architectural name.
    pub register: String,
    /// The field (`value` for a register judged whole, `other bits` for bits no field
    /// covers).
    pub field: String,
    /// The baseline's value of the field (shifted down).
    pub value: String,
    /// How it was chosen.
    pub rule: String,
    /// The distinct host values (shifted down), each with the first host that has it.
    pub hosts: Vec<HostValueJson>,
}

/// A host's value of a field.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostValueJson {
    /// The value (shifted down).
    pub value: String,
    /// The first host with it.
    pub host: String,
}

/// One implementation.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImplementationJson {
    /// MIDR_EL1.
    pub midr: String,
    /// REVIDR_EL1.
    pub revidr: String,
    /// AIDR_EL1.
    pub aidr: String,
}

/// The creation recipe on one host.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipeJson {
    /// The host's profile name.
    pub host: String,
    /// Enable KVM_CAP_ARM_WRITABLE_IMP_ID_REGS before the vCPUs exist.
    pub writable_imp_id_regs: bool,
    /// The register writes, in order.
    pub writes: Vec<crate::compat::BaselineRegisterJson>,
}

impl CpuBaseline {
    /// The JSON form; `pool` names the hosts (the profiles the baseline was made of).
    pub fn document(&self, pool: &[Profile]) -> CpuBaselineJson {
        use crate::json::hex;
        let name = |i: usize| {
            pool.get(i)
                .map_or_else(String::new, |p| p.name().to_string())
        };
        CpuBaselineJson {
            features: self.features,
            sve_vls: self.sve_vls.as_deref().map(crate::json::hex_le_bytes),
            covered: (0..pool.len())
                .filter(|&i| self.covers(i))
                .map(name)
                .collect(),
            left_out: self
                .left_out
                .iter()
                .map(|l| LeftOutJson {
                    host: name(l.host),
                    reason: l.reason.clone(),
                })
                .collect(),
            fields: self
                .fields
                .iter()
                .map(|f| FieldJson {
                    register: reg_name(f.id),
                    field: f.field.to_string(),
                    value: shown_bits(f.mask, f.value),
                    rule: f.rule.to_string(),
                    hosts: f
                        .hosts
                        .iter()
                        .map(|&(v, h)| HostValueJson {
                            value: shown_bits(f.mask, v),
                            host: name(h),
                        })
                        .collect(),
                })
                .collect(),
            implementations: self
                .implementations
                .iter()
                .map(|i| ImplementationJson {
                    midr: hex(i.midr),
                    revidr: hex(i.revidr),
                    aidr: hex(i.aidr),
                })
                .collect(),
            discover_impl: self.discover_impl,
            recipes: (0..pool.len())
                .filter(|&i| self.covers(i))
                .filter_map(|i| pool.get(i).map(|p| (i, self.recipe(p))))
                .map(|(i, r)| RecipeJson {
                    host: name(i),
                    writable_imp_id_regs: r.writable_imp_id_regs,
                    writes: r
                        .writes
                        .iter()
                        .map(|&(id, v)| crate::compat::BaselineRegisterJson {
                            name: reg_name(id),
                            id: hex(id),
                            value: hex(v),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}
