//! The whole-vCPU part of a profile (profile format version 2): what a probe sees of a host's
//! vCPU registers, per set of vCPU features the host offers.
//!
//! # JSON form (the `vcpu` key of an `armfw-profile/2` file)
//!
//! ```json
//! "vcpu": {
//!   "capabilities": {"writable_imp_id_regs": false, "counter_offset": true,
//!                    "reg_mask_ranges": "0x1", "mte": false},
//!   "writable_masks": {"0x603000000013c020": "0xff0fffffffffffff"},
//!   "feature_sets": [
//!     {"features": [],
//!      "registers": {"0x6030000000100000": "0x0", "0x603000000013c000": "0x410fd083"},
//!      "first_run": {"0x603000000013c5c4": "0x1"},
//!      "varies": ["0x603000000013df1a"]}
//!   ]
//! }
//! ```
//!
//! - `capabilities`: KVM_CHECK_EXTENSION of the capabilities that change register rules:
//!   KVM_CAP_ARM_WRITABLE_IMP_ID_REGS (239), KVM_CAP_COUNTER_OFFSET (227),
//!   KVM_CAP_ARM_SUPPORTED_REG_MASK_RANGES (230: the bit set of mask ranges, bit 0 the
//!   feature-ID range), KVM_CAP_ARM_MTE (205).
//! - `writable_masks`: KVM_ARM_GET_REG_WRITABLE_MASKS of the feature-ID range, keyed by the
//!   system register's ONE_REG id, non-zero masks only; absent where the kernel lacks the
//!   ioctl (before 6.7).
//! - `feature_sets`: one entry per probed set of vCPU features, the empty set first. Each has
//!   `registers`: KVM_GET_REG_LIST of vCPU 0 of a fresh one-vCPU VM (PSCI_0_2 and the set's
//!   features), in KVM's order, each id with the value KVM_GET_ONE_REG returns before the first
//!   KVM_RUN; `first_run`: the registers (outside the core class, which the probe's own guest
//!   code writes) whose value KVM changed by the first KVM_RUN, with the value after it;
//!   `varies`: the registers that read differently between two reads or two fresh VMs (the
//!   running counters), whose `registers` value is 0 (no sample is written, so that probing
//!   the same host again gives the same file).
//!
//! Derived facts are not stored twice: the SVE vector lengths are the SVE_VLS value of the
//! `sve` set, the PMU counter count is PMCR_EL0.N of the `pmu_v3` set.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use crate::abi::{CpuFeatures, OneRegId};
use crate::json::{FieldError, Number, Wide, hex, parse_hex};

/// Capabilities that change the register rules.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VcpuCapabilities {
    /// KVM_CAP_ARM_WRITABLE_IMP_ID_REGS (239, 6.15): MIDR/REVIDR/AIDR writable once enabled.
    pub writable_imp_id_regs: bool,
    /// KVM_CAP_COUNTER_OFFSET (227, 6.4): KVM_ARM_SET_COUNTER_OFFSET exists.
    pub counter_offset: bool,
    /// KVM_CAP_ARM_SUPPORTED_REG_MASK_RANGES (230, 6.7): the bit set of mask ranges.
    pub reg_mask_ranges: Number,
    /// KVM_CAP_ARM_MTE (205): the VM can enable MTE.
    pub mte: bool,
}

/// What a probe saw of vCPU 0 for one set of vCPU features.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSet {
    /// The features.
    pub features: CpuFeatures,
    /// Every listed register in KVM's order with its value on a fresh vCPU.
    pub registers: IdMap,
    /// The registers KVM changed by the first KVM_RUN, with their values after it.
    #[serde(default, skip_serializing_if = "IdMap::is_empty")]
    pub first_run: IdMap,
    /// The registers whose value differs between reads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub varies: Vec<Number>,
}

impl FeatureSet {
    /// The ids in KVM's order.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.registers.0.iter().map(|(id, _)| *id)
    }

    /// The reset value of `id`, if the set lists it.
    pub fn reset(&self, id: u64) -> Option<&Wide> {
        self.registers.get(id)
    }

    /// Whether `id` reads differently between reads.
    pub fn varies(&self, id: u64) -> bool {
        self.varies.iter().any(|n| n.0 == id)
    }
}

/// The whole-vCPU part of a profile (the `vcpu` key of a version-2 profile file; see
/// [`Profile`](crate::profile::Profile) and docs/schemas/armfw-profile-2.schema.json).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VcpuProfile {
    /// Capabilities that change the rules.
    pub capabilities: VcpuCapabilities,
    /// KVM_ARM_GET_REG_WRITABLE_MASKS, non-zero masks by system-register id; `None` where
    /// the kernel lacks the ioctl.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writable_masks: Option<IdMap>,
    /// The probed feature sets, the empty set first.
    pub feature_sets: Vec<FeatureSet>,
}

impl VcpuProfile {
    /// Every vCPU feature the host offers: the features of its largest probed set.
    pub fn all_features(&self) -> CpuFeatures {
        self.feature_sets
            .iter()
            .map(|s| s.features)
            .max_by_key(|f| f.count())
            .unwrap_or(CpuFeatures::NONE)
    }

    /// The probed set with exactly these features.
    pub fn feature_set(&self, features: CpuFeatures) -> Option<&FeatureSet> {
        self.feature_sets.iter().find(|s| s.features == features)
    }

    /// The writable mask of the system register `id` (0 where the kernel has the ioctl and
    /// lists none); `None` where the kernel lacks the ioctl.
    pub fn writable_mask(&self, id: u64) -> Option<u64> {
        self.writable_masks
            .as_ref()
            .map(|m| m.get(id).map_or(0, Wide::low_u64))
    }

    /// The checks a profile's `vcpu` part must pass: the empty feature set first, each set
    /// once, ids valid arm64 ONE_REG ids listed once each, values that fit their registers,
    /// `first_run` and `varies` naming listed ids, masks of 64-bit system registers.
    pub fn validate(&self) -> Result<(), FieldError> {
        let bad = |path: String, m: String| Err(FieldError::bad_value(path, m));
        if self.feature_sets.first().map(|s| s.features) != Some(CpuFeatures::NONE) {
            return bad(
                "vcpu.feature_sets".into(),
                "must start with the empty feature set".into(),
            );
        }
        for (i, set) in self.feature_sets.iter().enumerate() {
            let path = format!("vcpu.feature_sets[{i}]");
            if self.feature_sets[..i]
                .iter()
                .any(|o| o.features == set.features)
            {
                return bad(path, format!("the set {} is listed twice", set.features));
            }
            set.registers.check(&format!("{path}.registers"))?;
            set.first_run.check(&format!("{path}.first_run"))?;
            for (id, _) in &set.first_run.0 {
                if set.reset(*id).is_none() {
                    return bad(
                        format!("{path}.first_run"),
                        format!("{} is not in registers", hex(*id)),
                    );
                }
            }
            for n in &set.varies {
                if set.reset(n.0).is_none() {
                    return bad(
                        format!("{path}.varies"),
                        format!("{} is not in registers", hex(n.0)),
                    );
                }
            }
        }
        if let Some(m) = &self.writable_masks {
            m.check("vcpu.writable_masks")?;
            for (id, _) in &m.0 {
                let r = OneRegId(*id);
                if r.class() != 0x13 || r.size_bytes() != 8 {
                    return bad(
                        "vcpu.writable_masks".into(),
                        format!("{} is not a 64-bit system register", hex(*id)),
                    );
                }
            }
        }
        Ok(())
    }
}

/// ONE_REG ids with values, in a fixed order (KVM's list order): a JSON object whose keys are
/// the ids as hex strings, one line per register in a pretty-printed file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdMap(pub Vec<(u64, Wide)>);

impl IdMap {
    /// The value of `id`.
    pub fn get(&self, id: u64) -> Option<&Wide> {
        self.0.iter().find(|(i, _)| *i == id).map(|(_, v)| v)
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every id an arm64 ONE_REG id, once, with a value that fits its size.
    fn check(&self, path: &str) -> Result<(), FieldError> {
        let mut seen = std::collections::HashSet::new();
        for (id, v) in &self.0 {
            let r = OneRegId(*id);
            if !r.is_arm64() {
                return Err(FieldError::bad_value(
                    path,
                    format!("{} is not an arm64 ONE_REG id", hex(*id)),
                ));
            }
            if !seen.insert(*id) {
                return Err(FieldError::bad_value(
                    path,
                    format!("{} is listed twice", hex(*id)),
                ));
            }
            if v.fit(r.size_bytes()).is_none() {
                return Err(FieldError::bad_value(
                    format!("{path}.{}", hex(*id)),
                    format!("does not fit the register's {}-byte buffer", r.size_bytes()),
                ));
            }
        }
        Ok(())
    }
}

impl Serialize for IdMap {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (id, v) in &self.0 {
            m.serialize_entry(&hex(*id), v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for IdMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IdMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of register ids and values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<IdMap, A::Error> {
                let mut out = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    let id = parse_hex(&key).ok_or_else(|| {
                        de::Error::custom(format!("{key:?} is not a 0x register id"))
                    })?;
                    out.push((id, map.next_value::<Wide>()?));
                }
                Ok(IdMap(out))
            }
        }
        d.deserialize_map(V)
    }
}
