//! The whole-vCPU model's own tests (the conformance against real kernels is
//! `tests/recorded.rs`).

use super::*;
use crate::scenario::{self, ModelBackend, StepResult};

fn v1_of(name: &str) -> Profile {
    let mut parts = crate::profile::builtin_named(name).unwrap().into_parts();
    parts.vcpu = None;
    Profile::new(parts).unwrap()
}

#[test]
fn version_1_profiles_still_load_and_say_what_they_cannot_answer() {
    let v1 = v1_of("linux-6.12.117-max");
    let json = v1.to_json();
    assert_eq!(json["format"], "armfw-profile/1");
    let back = Profile::from_json(&json.to_string()).unwrap();
    assert!(back.vcpu().is_none());
    // A firmware register is answered as before; MIDR_EL1 and a feature set are not.
    let text = r#"{"name": "t", "steps": [
        {"op": "get", "reg": "PSCI_VERSION"},
        {"op": "get", "reg": "0x603000000013c000"}]}"#;
    let s = scenario::parse(text, None).unwrap();
    let doc = scenario::run(&s, &mut ModelBackend::new(&back));
    assert!(matches!(doc.results[0], StepResult::Value(_)));
    assert!(matches!(&doc.results[1], StepResult::Error(e) if e.contains("re-probe")));
    let text = r#"{"name": "t", "vm": {"features": ["pmu_v3"]}, "steps": []}"#;
    let s = scenario::parse(text, None).unwrap();
    let doc = scenario::run(&s, &mut ModelBackend::new(&back));
    assert!(matches!(&doc.results[0], StepResult::Error(_)));
}

#[test]
fn the_format_tag_and_the_vcpu_part_go_together() {
    let v2 = crate::profile::builtin_named("linux-6.12.117-max").unwrap();
    let mut json = v2.to_json();
    assert_eq!(json["format"], "armfw-profile/2");
    json["format"] = "armfw-profile/1".into();
    let e = Profile::from_json(&json.to_string())
        .unwrap_err()
        .to_string();
    assert!(e.contains("vcpu"), "{e}");
    let mut json = v1_of("linux-6.12.117-max").to_json();
    json["format"] = "armfw-profile/2".into();
    let e = Profile::from_json(&json.to_string())
        .unwrap_err()
        .to_string();
    assert!(e.contains("vcpu"), "{e}");
}

#[test]
fn an_unprobed_feature_combination_is_derived_from_the_single_feature_sets() {
    // max probes none, pmu_v3, sve, ptrauth and all four; pmu_v3+sve is derived: the
    // PMU block and the SVE class, no V registers.
    let p = crate::profile::builtin_named("linux-7.2.13-max").unwrap();
    let v = p.vcpu().unwrap();
    let pmu = CpuFeatures::of(&[CpuFeature::PmuV3]);
    let both = pmu.with(CpuFeature::Sve);
    assert!(v.feature_set(both).is_none());
    let set = feature_set(v, both).unwrap();
    let has = |id: u64| set.reset(id).is_some();
    assert!(has(SVE_VLS));
    assert!(has(sysreg_id(3, 3, 9, 12, 0))); // PMCR_EL0
    assert!(!has(0x6040_0000_0010_0054)); // V0
    let all = v.feature_sets.last().unwrap();
    let ptrauth_key = sysreg_id(3, 0, 2, 1, 0); // APIAKEYLO_EL1
    assert!(all.reset(ptrauth_key).is_some() && !has(ptrauth_key));
    assert!(feature_set(v, CpuFeatures::of(&[CpuFeature::PtrauthAddress])).is_err());
}
