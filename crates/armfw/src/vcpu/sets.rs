//! The register set of a vCPU with given features: probed, or derived from the probed sets.

use super::SetupError;
use crate::abi::CpuFeatures;
use crate::profile::{FeatureSet, IdMap, VcpuProfile};

/// The registers of a vCPU with `features` on the host `v`: the probed set, or one derived
/// from the probed sets (see `derive_set`), or why KVM would refuse the features.
pub fn feature_set(v: &VcpuProfile, features: CpuFeatures) -> Result<FeatureSet, SetupError> {
    if !features.is_initable() {
        return Err(
            "KVM_ARM_VCPU_INIT: EINVAL (pointer authentication needs both features)".into(),
        );
    }
    derive_set(v, features).ok_or_else(|| {
        format!("KVM_ARM_VCPU_INIT: EINVAL (the host does not offer the features {features})")
    })
}

/// The probed set with exactly `features`, or one derived from the probed sets: the
/// registers of the empty set, plus those each requested feature's own set adds, less those
/// it removes, in the order of the largest probed set that holds them all; each value from
/// the set of the feature that changed it. `None` when a feature was never probed.
fn derive_set(v: &VcpuProfile, features: CpuFeatures) -> Option<FeatureSet> {
    if let Some(s) = v.feature_set(features) {
        return Some(s.clone());
    }
    let base = v.feature_set(CpuFeatures::NONE)?;
    let own: Vec<&FeatureSet> = features
        .iter()
        .map(|f| v.feature_set(f.group()))
        .collect::<Option<_>>()?;
    let order = v
        .feature_sets
        .iter()
        .filter(|s| s.features.contains(features))
        .max_by_key(|s| s.registers.0.len())?;
    let mut regs = Vec::new();
    for (id, _) in &order.registers.0 {
        let in_base = base.reset(*id).is_some();
        let added = own.iter().any(|s| s.reset(*id).is_some() && !in_base);
        let removed = own.iter().any(|s| s.reset(*id).is_none() && in_base);
        if (in_base || added) && !removed {
            let value = own
                .iter()
                .filter_map(|s| s.reset(*id))
                .find(|w| Some(*w) != base.reset(*id))
                .or(base.reset(*id))
                .or(order.reset(*id))
                .cloned()
                .unwrap_or_default();
            regs.push((*id, value));
        }
    }
    Some(FeatureSet {
        features,
        registers: IdMap(regs),
        first_run: base.first_run.clone(),
        varies: base.varies.clone(),
    })
}
