//! Whole-VM states (snapshot format 2.0) against real kernels, without booting them.
//!
//! The `vcpu_restore_all_*` scenarios write every register of a fresh vCPU of one host, in
//! that host's list order, onto a fresh vCPU of each recorded host, and their real results
//! are recorded (scenarios/expected/HOST/). That is a write-everything-back restore of a
//! whole-VM state: so the state `armfw` saves from the model of the source host, restored by
//! the one restore sequence under the write-all policy on the model of each destination,
//! must meet exactly the refusals the real destination kernel gave, register by register.

use std::path::Path;

use armfw::abi::{CpuFeatures, Errno};
use armfw::compat::whole::restore_on_model;
use armfw::migrate::sequence::{RestoreStop, VmmPolicy, Writes};
use armfw::snapshot::Step;
use armfw::{Profile, Snapshot};
use serde_json::Value;

mod recorded_hosts;

use recorded_hosts::{recorded_hosts, repo};

fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The source host of each whole-vCPU restore scenario.
const SOURCES: [(&str, &str); 8] = [
    ("vcpu_restore_all_from_6_1_max", "linux-6.1.192-max"),
    ("vcpu_restore_all_from_6_1_a53", "linux-6.1.192-cortex-a53"),
    ("vcpu_restore_all_from_6_12_max", "linux-6.12.117-max"),
    (
        "vcpu_restore_all_from_6_12_n1",
        "linux-6.12.117-neoverse-n1",
    ),
    ("vcpu_restore_all_from_7_2_max", "linux-7.2.13-max"),
    ("vcpu_restore_all_from_7_2_a72", "linux-7.2.13-cortex-a72"),
    ("vcpu_restore_all_pmu_from_7_2_max", "linux-7.2.13-max"),
    ("vcpu_restore_all_features_from_7_2_max", "linux-7.2.13-max"),
];

/// What the real destination answered: `None` when its VM set-up failed (a feature it does not
/// offer), else the refused writes as (id, errno) in order. SVE_VLS is left out: the
/// scenario writes it after set-up has finalized SVE (EPERM), while a restore writes it at
/// set-up, before finalizing, as Cloud Hypervisor and QEMU do.
fn real_refusals(scenario: &Value, host: &str, name: &str) -> Option<Vec<(u64, Errno)>> {
    let doc = json(&repo().join(format!("scenarios/expected/{host}/{name}.json")));
    let results = doc["results"].as_array().expect("results");
    if results.len() == 1 && results[0].get("error").is_some() {
        return None;
    }
    let steps = scenario["steps"].as_array().expect("steps");
    assert_eq!(
        steps.len(),
        results.len(),
        "{host}/{name}: one result per step"
    );
    Some(
        steps
            .iter()
            .zip(results)
            .filter_map(|(step, r)| {
                let errno = r.get("errno")?.as_str()?;
                let id = step["reg"].as_str()?;
                let id = u64::from_str_radix(id.trim_start_matches("0x"), 16).ok()?;
                if id == armfw::abi::vcpu_reg::SVE_VLS {
                    return None;
                }
                Some((id, Errno::from_name(errno).expect("an errno name")))
            })
            .collect(),
    )
}

#[test]
fn a_write_everything_back_restore_meets_the_refusals_real_kernels_gave() {
    let hosts = recorded_hosts();
    let mut compared = 0;
    // Pairs where the real kernel refused writes or the set-up: the comparison has teeth.
    let mut refused_pairs = 0;
    for (name, source) in SOURCES {
        let scenario = json(&repo().join(format!("scenarios/{name}.json")));
        let features: CpuFeatures =
            serde_json::from_value(scenario["vm"]["features"].clone()).unwrap_or(CpuFeatures::NONE);
        let from = armfw::profile::builtin_named(source).expect("a built-in source");
        let state = Snapshot::created_whole_on(&from, 1, features, false).expect("saved");
        // The state reads back from both of its forms unchanged.
        let again = Snapshot::from_json(&state.to_json().to_string()).expect("JSON form");
        assert_eq!(again, state, "{name}: JSON round trip");
        assert_eq!(
            Snapshot::from_bytes(&state.to_bytes()).expect("binary form"),
            state,
            "{name}: binary round trip"
        );
        for host in &hosts {
            let dest: Profile = armfw::profile::builtin_named(host).expect("a built-in host");
            let predicted = restore_on_model(&state, &dest, Writes::Vmm(VmmPolicy::WriteAll));
            let real = real_refusals(&scenario, host, name);
            if real.as_ref().is_none_or(|r| !r.is_empty()) {
                refused_pairs += 1;
            }
            match (real, predicted) {
                (None, Err(RestoreStop::Refused(r))) => {
                    assert!(
                        matches!(r[..], [ref one] if matches!(one.step, Step::InitVcpu { .. })),
                        "{name} on {host}: the real set-up failed, the model refused {r:?}"
                    );
                }
                (None, other) => {
                    panic!("{name} on {host}: the real set-up failed, the model gave {other:?}")
                }
                (Some(real), Ok(())) => {
                    assert!(
                        real.is_empty(),
                        "{name} on {host}: real refusals {real:?}, model none"
                    );
                }
                (Some(real), Err(RestoreStop::Refused(r))) => {
                    let model: Vec<(u64, Errno)> = r
                        .iter()
                        .map(|x| match x.step {
                            Step::SetOneReg { id, .. } => (id, x.errno),
                            other => panic!("{name} on {host}: refused {other}"),
                        })
                        .collect();
                    assert_eq!(model, real, "{name} on {host}");
                }
                (Some(_), Err(other)) => panic!("{name} on {host}: {other:?}"),
            }
            compared += 1;
        }
    }
    assert_eq!(compared, SOURCES.len() * hosts.len());
    assert!(
        refused_pairs > compared / 4,
        "only {refused_pairs} of {compared} pairs had refusals"
    );
    assert!(hosts.len() >= 12, "recorded hosts: {}", hosts.len());
}
