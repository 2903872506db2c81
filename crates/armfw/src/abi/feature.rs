//! The vCPU features of KVM_ARM_VCPU_INIT that change the register ABI
//! (Linux `arch/arm64/include/uapi/asm/kvm.h`, `KVM_ARM_VCPU_*`): the scenario format's
//! `vm.features` and the feature sets of a profile.
//!
//! `KVM_ARM_VCPU_POWER_OFF` (0) and `KVM_ARM_VCPU_PSCI_0_2` (2) are the firmware's
//! ([`crate::firmware::VcpuFeatures`]); `EL1_32BIT` (1) and `HAS_EL2` (7) are not modelled.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Serialize, Serializer};

/// One vCPU feature bit of KVM_ARM_VCPU_INIT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CpuFeature {
    /// `KVM_ARM_VCPU_PMU_V3` (bit 3): the PMUv3 registers.
    PmuV3,
    /// `KVM_ARM_VCPU_SVE` (bit 4): SVE, finalized with `KVM_ARM_VCPU_FINALIZE`.
    Sve,
    /// `KVM_ARM_VCPU_PTRAUTH_ADDRESS` (bit 5): address authentication keys.
    PtrauthAddress,
    /// `KVM_ARM_VCPU_PTRAUTH_GENERIC` (bit 6): the generic authentication key.
    PtrauthGeneric,
}

impl CpuFeature {
    /// Every modelled feature, in KVM bit order.
    pub const ALL: [CpuFeature; 4] = [
        CpuFeature::PmuV3,
        CpuFeature::Sve,
        CpuFeature::PtrauthAddress,
        CpuFeature::PtrauthGeneric,
    ];

    /// The KVM_ARM_VCPU_INIT feature bit number.
    pub const fn kvm_bit(self) -> u32 {
        match self {
            CpuFeature::PmuV3 => 3,
            CpuFeature::Sve => 4,
            CpuFeature::PtrauthAddress => 5,
            CpuFeature::PtrauthGeneric => 6,
        }
    }

    /// The scenario format's name: the `KVM_ARM_VCPU_` name in lower case, no prefix.
    pub const fn name(self) -> &'static str {
        match self {
            CpuFeature::PmuV3 => "pmu_v3",
            CpuFeature::Sve => "sve",
            CpuFeature::PtrauthAddress => "ptrauth_address",
            CpuFeature::PtrauthGeneric => "ptrauth_generic",
        }
    }

    /// The features KVM takes only together with this one: the two pointer-authentication
    /// features are a pair (either alone is EINVAL at KVM_ARM_VCPU_INIT, measured); every other
    /// feature stands alone.
    pub fn group(self) -> CpuFeatures {
        match self {
            CpuFeature::PtrauthAddress | CpuFeature::PtrauthGeneric => CpuFeatures::NONE
                .with(CpuFeature::PtrauthAddress)
                .with(CpuFeature::PtrauthGeneric),
            f => CpuFeatures::NONE.with(f),
        }
    }

    /// The feature with this scenario-format name.
    pub fn from_name(name: &str) -> Option<CpuFeature> {
        CpuFeature::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// A set of [`CpuFeature`]s. In JSON: an array of names without repeats; written in KVM bit
/// order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CpuFeatures(u8);

impl CpuFeatures {
    /// No features.
    pub const NONE: CpuFeatures = CpuFeatures(0);

    /// The set of these features.
    pub fn of(features: &[CpuFeature]) -> CpuFeatures {
        features.iter().fold(CpuFeatures::NONE, |s, &f| s.with(f))
    }

    /// This set with `f` added.
    pub const fn with(self, f: CpuFeature) -> CpuFeatures {
        CpuFeatures(self.0 | 1 << f.kvm_bit())
    }

    /// Whether `f` is in the set.
    pub const fn has(self, f: CpuFeature) -> bool {
        self.0 & 1 << f.kvm_bit() != 0
    }

    /// Whether every feature of `other` is in this set.
    pub const fn contains(self, other: CpuFeatures) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether KVM_ARM_VCPU_INIT can take the set: every feature's [`CpuFeature::group`]
    /// complete.
    pub fn is_initable(self) -> bool {
        self.iter().all(|f| self.contains(f.group()))
    }

    /// The features in both sets.
    pub const fn intersect(self, other: CpuFeatures) -> CpuFeatures {
        CpuFeatures(self.0 & other.0)
    }

    /// How many features.
    pub const fn count(self) -> u32 {
        self.0.count_ones()
    }

    /// Whether there are no features.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The features, in KVM bit order.
    pub fn iter(self) -> impl Iterator<Item = CpuFeature> {
        CpuFeature::ALL.into_iter().filter(move |&f| self.has(f))
    }

    /// The bits to OR into `kvm_vcpu_init.features[0]`.
    pub const fn kvm_bits(self) -> u32 {
        // Each feature's bit is its KVM bit: the set is the KVM word.
        self.0 as u32
    }

    /// The names joined with `+` (`pmu_v3+sve`), or `none`: the name of a feature set in
    /// reports.
    pub fn label(self) -> String {
        if self.is_empty() {
            return "none".into();
        }
        self.iter()
            .map(CpuFeature::name)
            .collect::<Vec<_>>()
            .join("+")
    }
}

impl fmt::Display for CpuFeatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

impl Serialize for CpuFeatures {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.iter().count()))?;
        for f in self.iter() {
            seq.serialize_element(f.name())?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for CpuFeatures {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CpuFeatures;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of vCPU feature names")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<CpuFeatures, A::Error> {
                let mut set = CpuFeatures::NONE;
                while let Some(name) = seq.next_element::<String>()? {
                    let f = CpuFeature::from_name(&name).ok_or_else(|| {
                        de::Error::custom(format!(
                            "{name:?} is not a vCPU feature (pmu_v3, sve, ptrauth_address, ptrauth_generic)"
                        ))
                    })?;
                    if set.has(f) {
                        return Err(de::Error::custom(format!("{name:?} is listed twice")));
                    }
                    set = set.with(f);
                }
                Ok(set)
            }
        }
        d.deserialize_seq(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_the_uapi_header_values() {
        // arch/arm64/include/uapi/asm/kvm.h: PMU_V3 3, SVE 4, PTRAUTH_ADDRESS 5, PTRAUTH_GENERIC 6.
        let all = CpuFeatures::of(&CpuFeature::ALL);
        assert_eq!(all.kvm_bits(), 0b111_1000);
        assert_eq!(all.label(), "pmu_v3+sve+ptrauth_address+ptrauth_generic");
        assert_eq!(CpuFeatures::NONE.label(), "none");
    }

    #[test]
    fn names_round_trip_and_repeats_are_refused() {
        let s: CpuFeatures = serde_json::from_str(r#"["sve","pmu_v3"]"#).unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), r#"["pmu_v3","sve"]"#);
        assert!(serde_json::from_str::<CpuFeatures>(r#"["sve","sve"]"#).is_err());
        assert!(serde_json::from_str::<CpuFeatures>(r#"["SVE"]"#).is_err());
        assert!(serde_json::from_str::<CpuFeatures>(r#"["el1_32bit"]"#).is_err());
    }
}
