//! Compatibility tests. Expectations come from the kernel's rules (Linux
//! `arch/arm64/kvm/hypercalls.c`, `Documentation/virt/kvm/arm/fw-pseudo-registers.rst`) and the
//! measured host profiles (`crates/armfw/profiles/`), never from this code's output.

use serde_json::json;

use super::*;
use crate::abi::{Errno, FwReg, PsciVersion};
use crate::firmware::{Firmware, VcpuFeatures};
use crate::migrate::{RestoreError, RestorePolicy};
use crate::profile::Profile;
use crate::profile::builtin;
use crate::snapshot::{FilterRange, SavedReg};
use crate::snapshot::{Snapshot, Step};
use crate::test_support::{self, host};

const M612: &str = "linux-6.12.117-max";
const M72: &str = "linux-7.2.13-max";
const A53: &str = "linux-6.12.117-cortex-a53";
const A72: &str = "linux-6.12.117-cortex-a72";
const N1: &str = "linux-6.12.117-neoverse-n1";

/// The state of a 2-vCPU VM on `name` with `writes` made before it ran.
fn state(name: &str, writes: &[(FwReg, u64)]) -> Snapshot {
    let mut fw = test_support::vm(&host(name), 2, true);
    for &(reg, value) in writes {
        fw.set_one_reg(0, reg.id(), value).unwrap();
    }
    fw.vcpu_run(0).unwrap();
    fw.save().unwrap()
}

fn outcome(r: &Report, reg: FwReg) -> (Rule, Outcome) {
    let f = r.finding(reg).unwrap();
    (f.rule, f.outcome)
}

fn set_fails(reg: FwReg, errno: Errno) -> StrictOutcome {
    StrictOutcome::Fails {
        step: Step::SetOneReg {
            vcpu: 0,
            id: reg.id(),
        },
        errno,
    }
}

/// A profile edited from a built-in one.
fn edited(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Profile {
    let mut v = host(name).to_json();
    edit(&mut v);
    Profile::from_value(&v).unwrap()
}

#[test]
fn default_7_2_vm_to_6_12_is_refused_for_psci_1_3() {
    // 7.2 defaults to PSCI 1.3; 6.12 accepts 0.2, 1.0, 1.1 (measured): SET gives EINVAL.
    let r = check(&state(M72, &[]), &host(M612));
    assert_eq!(r.verdict, Verdict::Incompatible);
    let f = r.finding(FwReg::PsciVersion).unwrap();
    assert_eq!(
        (f.rule, f.outcome),
        (Rule::PsciVersionNotOffered, Outcome::Refuse)
    );
    assert_eq!(
        f.remedy,
        Some(Remedy::PinPsciVersion {
            at_most: PsciVersion::V1_1
        })
    );
    assert_eq!(r.strict, set_fails(FwReg::PsciVersion, Errno::EINVAL));
}

#[test]
fn default_6_12_vm_to_7_2_is_compatible() {
    // 7.2 accepts 1.1; its extra VENDOR_HYP_BMAP_2 defaults to 0, which is what 6.12 had.
    let r = check(&state(M612, &[]), &host(M72));
    assert_eq!(r.verdict, Verdict::Compatible);
    assert_eq!(r.strict, StrictOutcome::Ok);
    assert_eq!(
        outcome(&r, FwReg::VendorHypBmap2),
        (Rule::NotSavedDefaultIsAbsence, Outcome::Keep)
    );
    assert_eq!(
        outcome(&r, FwReg::PsciVersion),
        (Rule::PsciVersionOffered, Outcome::Restore)
    );
    assert_eq!(r.plan().count(), 7);
}

#[test]
fn pinned_7_2_vm_to_6_12_needs_the_plan_that_drops_bmap_2() {
    let r = check(&state(M72, &[(FwReg::PsciVersion, 0x1_0001)]), &host(M612));
    assert_eq!(r.verdict, Verdict::CompatibleWithPlan);
    // Strict: the first seven registers are accepted, VENDOR_HYP_BMAP_2 is ENOENT on 6.12.
    assert_eq!(r.strict, set_fails(FwReg::VendorHypBmap2, Errno::ENOENT));
    let plan: Vec<PlanAction> = r.plan().copied().collect();
    assert_eq!(plan.len(), 8);
    assert_eq!(
        plan[0],
        PlanAction::Write {
            id: FwReg::PsciVersion.id(),
            value: 0x1_0001
        }
    );
    assert_eq!(
        plan[7],
        PlanAction::Skip {
            id: FwReg::VendorHypBmap2.id(),
            rule: Rule::BitmapZeroIsAbsence
        }
    );
}

#[test]
fn bmap_2_in_use_cannot_go_to_a_kernel_without_it() {
    let s = state(
        M72,
        &[(FwReg::PsciVersion, 0x1_0001), (FwReg::VendorHypBmap2, 0x3)],
    );
    let r = check(&s, &host(M612));
    assert_eq!(r.verdict, Verdict::Incompatible);
    let f = r.finding(FwReg::VendorHypBmap2).unwrap();
    assert_eq!(
        (f.rule, f.outcome),
        (Rule::BitmapNoRegister, Outcome::Refuse)
    );
    assert_eq!(
        f.remedy,
        Some(Remedy::ClearBits {
            reg: FwReg::VendorHypBmap2,
            bits: 0x3
        })
    );
    assert_eq!(r.strict, set_fails(FwReg::VendorHypBmap2, Errno::ENOENT));
}

#[test]
fn workaround_levels_above_the_destination_are_refused() {
    // cortex-a53 host: WA1 2, WA2 3, WA3 2; max: WA1 2, WA2 0, WA3 0 (measured).
    let r = check(&state(A53, &[]), &host(M612));
    assert_eq!(r.verdict, Verdict::Incompatible);
    assert_eq!(
        outcome(&r, FwReg::SmcccArchWorkaround1),
        (Rule::WorkaroundWithinHost, Outcome::Restore)
    );
    assert_eq!(
        outcome(&r, FwReg::SmcccArchWorkaround2),
        (Rule::WorkaroundAboveHost, Outcome::Refuse)
    );
    assert_eq!(
        r.finding(FwReg::SmcccArchWorkaround3).unwrap().remedy,
        Some(Remedy::HostLevel {
            reg: FwReg::SmcccArchWorkaround3,
            level: 2
        })
    );
    assert_eq!(
        r.strict,
        set_fails(FwReg::SmcccArchWorkaround2, Errno::EINVAL)
    );
}

#[test]
fn workaround_levels_below_the_destination_are_accepted_by_kvm_but_refused_by_armfw() {
    // cortex-a72 host: every level 0 (NOT_AVAIL). KVM accepts 0 anywhere (SET only checks the
    // level is not above the host's), but stores nothing: on a host at another level the
    // guest's ARCH_FEATURES answer changes. Measured by conformance/migrate: cortex-a72 to max
    // restored with every register written, and ARCH_FEATURES(WORKAROUND_1) went from
    // NOT_SUPPORTED to NOT_REQUIRED.
    for dest in [A53, M612, N1, M72] {
        let r = check(&state(A72, &[]), &host(dest));
        assert_eq!(r.strict, StrictOutcome::Ok, "{dest}");
        assert_eq!(r.verdict, Verdict::Incompatible, "{dest}");
        assert_eq!(
            outcome(&r, FwReg::SmcccArchWorkaround1),
            (Rule::WorkaroundBelowHost, Outcome::Refuse),
            "{dest}"
        );
    }
    // The same levels on both hosts: nothing the guest sees changes.
    assert_eq!(
        check(&state(A72, &[]), &host(A72)).verdict,
        Verdict::Compatible
    );
    // neoverse-n1 WA3 = 1 (AVAIL) onto max WA3 = 0: KVM refuses (EINVAL).
    assert_eq!(
        check(&state(N1, &[]), &host(M612)).verdict,
        Verdict::Incompatible
    );
}

#[test]
fn service_bits_the_destination_lacks_are_refused() {
    let dest = edited(M612, |v| {
        v["registers"][6]["default"] = json!("0x1");
        v["registers"][6]["writable"] = json!("0x1");
    });
    let r = check(&state(M612, &[]), &dest);
    let f = r.finding(FwReg::VendorHypBmap).unwrap();
    assert_eq!(
        (f.rule, f.outcome),
        (Rule::BitmapBitsMissing, Outcome::Refuse)
    );
    assert_eq!(
        f.remedy,
        Some(Remedy::ClearBits {
            reg: FwReg::VendorHypBmap,
            bits: 0x2
        })
    );
    assert_eq!(r.strict, set_fails(FwReg::VendorHypBmap, Errno::EINVAL));
    // With PTP (bit 1) cleared at creation, the same move is compatible.
    let s = state(M612, &[(FwReg::VendorHypBmap, 0x1)]);
    assert_eq!(check(&s, &dest).verdict, Verdict::Compatible);
}

#[test]
fn capabilities_the_destination_lacks_are_refused_before_any_register() {
    let mut s = state(M612, &[]);
    s.vm.system_suspend = true;
    s.vm.smccc_filter.push(FilterRange {
        base: 0x8400_0000,
        nr_functions: 1,
        action: crate::firmware::FilterAction::Deny,
    });
    let old = edited(M612, |v| {
        v["capabilities"]["system_suspend"] = json!(false);
        v["capabilities"]["smccc_filter"] = json!(false);
    });
    let r = check(&s, &old);
    assert_eq!(r.verdict, Verdict::Incompatible);
    let rules: Vec<Rule> = r
        .findings()
        .filter(|f| f.is_refused())
        .map(|f| f.rule)
        .collect();
    assert_eq!(
        rules,
        [Rule::SystemSuspendMissing, Rule::SmcccFilterMissing]
    );
    assert_eq!(
        r.strict,
        StrictOutcome::Fails {
            step: Step::EnableSystemSuspend,
            errno: Errno::EINVAL
        }
    );
    let r = check(&s, &host(M612));
    assert_eq!(r.verdict, Verdict::Compatible);
    let plan: Vec<PlanAction> = r.plan().copied().take(2).collect();
    assert_eq!(
        plan,
        [
            PlanAction::EnableSystemSuspend,
            PlanAction::InstallSmcccFilter { ranges: 1 }
        ]
    );
}

#[test]
fn unknown_firmware_register_is_refused_and_strict_gets_enoent() {
    // A future FW_REG(4) (a WORKAROUND_4 is only in linux-next): not in any profile.
    let mut s = state(M72, &[(FwReg::PsciVersion, 0x1_0001)]);
    s.vm.registers.insert(
        4,
        SavedReg {
            id: 0x6030_0000_0014_0004,
            value: 1,
        },
    );
    s.validate().unwrap();
    let r = check(&s, &host(M72));
    assert_eq!(r.verdict, Verdict::Incompatible);
    let f = r
        .findings()
        .find(|f| f.rule == Rule::UnknownRegister)
        .unwrap();
    assert_eq!(f.subject, Subject::Register(0x6030_0000_0014_0004));
    assert_eq!(
        r.strict,
        StrictOutcome::Fails {
            step: Step::SetOneReg {
                vcpu: 0,
                id: 0x6030_0000_0014_0004
            },
            errno: Errno::ENOENT
        }
    );
}

#[test]
fn pre_5_2_destination_answers_einval_and_no_workaround_register_is_dropped_only_at_0() {
    // A 5.1 host: PSCI_VERSION only (the WORKAROUND registers came in 5.2, the bitmaps in
    // 5.19), unknown firmware ids are EINVAL before 5.2.
    let old = edited(M612, |v| {
        v["kernel"] = json!("5.1.21");
        v["registers"] = json!([{"name": "PSCI_VERSION", "default": "0x10000"}]);
        v["psci_versions"] = json!(["0x2", "0x10000"]);
        v["capabilities"]["smccc_filter"] = json!(false);
        v["capabilities"]["system_suspend"] = json!(false);
    });
    let s = state(A72, &[(FwReg::PsciVersion, 0x1_0000)]);
    let r = check(&s, &old);
    assert_eq!(
        outcome(&r, FwReg::SmcccArchWorkaround1),
        (Rule::WorkaroundPromisesNothing, Outcome::Skip)
    );
    assert_eq!(
        outcome(&r, FwReg::StdBmap),
        (Rule::BitmapNoRegister, Outcome::Refuse)
    );
    assert_eq!(
        r.strict,
        set_fails(FwReg::SmcccArchWorkaround1, Errno::EINVAL)
    );
    let r = check(&state(M612, &[(FwReg::PsciVersion, 0x1_0000)]), &old);
    assert_eq!(
        outcome(&r, FwReg::SmcccArchWorkaround1),
        (Rule::WorkaroundNoRegister, Outcome::Refuse)
    );
}

#[test]
fn psci_0_1_vm_keeps_0_1_anywhere() {
    let mut fw = Firmware::new(&host(M72));
    fw.add_vcpu().unwrap();
    fw.init_vcpu(
        0,
        VcpuFeatures {
            psci_0_2: false,
            power_off: false,
        },
    )
    .unwrap();
    let s = fw.save().unwrap();
    assert_eq!(s.psci_version(), Some(PsciVersion::V0_1));
    let s = Snapshot {
        vm: crate::snapshot::VmState {
            registers: s.vm.registers[..7].to_vec(),
            ..s.vm
        },
        ..s
    };
    let r = check(&s, &host(M612));
    assert_eq!(
        outcome(&r, FwReg::PsciVersion),
        (Rule::Psci01, Outcome::Restore)
    );
    assert_eq!(r.verdict, Verdict::Compatible);
}

#[test]
fn every_rule_has_a_name_and_a_reason() {
    let mut names: Vec<&str> = Rule::ALL.iter().map(|r| r.name()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), Rule::ALL.len());
    assert!(Rule::ALL.iter().all(|r| r.text().len() > 40));
}

/// The snapshots the consistency test moves: every built-in host's defaults, pinned to each
/// PSCI version the host offers, with each bitmap cleared, and with BMAP_2 in use.
fn variants() -> Vec<Snapshot> {
    let mut out = Vec::new();
    for p in builtin() {
        out.push(state(p.name(), &[]));
        for v in p.psci_versions() {
            out.push(state(p.name(), &[(FwReg::PsciVersion, v.0.into())]));
        }
        for r in p.registers() {
            if r.reg.is_bitmap() {
                out.push(state(
                    p.name(),
                    &[
                        (FwReg::PsciVersion, 0x1_0001),
                        (r.reg, r.writable.unwrap() ^ r.default),
                    ],
                ));
            }
        }
    }
    out
}

/// The prediction must be what the model's restore does, for both policies.
#[test]
fn predictions_match_the_model_restore_for_every_pair_of_hosts() {
    let hosts = builtin();
    for s in variants() {
        for dest in &hosts {
            let r = check(&s, dest);
            let mut fw = Firmware::new(dest);
            let strict = fw.restore(&s, RestorePolicy::Strict);
            match (r.strict, strict) {
                (StrictOutcome::Ok, Ok(_)) => {}
                (
                    StrictOutcome::Fails { step, errno },
                    Err(RestoreError::Failed {
                        step: s2,
                        errno: e2,
                    }),
                ) => {
                    assert_eq!((step, errno), (s2, e2));
                }
                (want, got) => panic!(
                    "{} -> {}: predicted {want:?}, got {got:?}",
                    s.source.profile,
                    dest.name()
                ),
            }
            let mut fw = Firmware::new(dest);
            let armfw = fw.restore(&s, RestorePolicy::Armfw);
            assert_eq!(
                armfw.is_ok(),
                r.verdict != Verdict::Incompatible,
                "{} -> {}",
                s.source.profile,
                dest.name()
            );
            // Compatible means the strict restore works as well.
            if r.verdict == Verdict::Compatible {
                assert_eq!(r.strict, StrictOutcome::Ok);
            }
            if armfw.is_ok() {
                // The guest sees the saved PSCI version and bitmaps on the destination.
                assert_eq!(
                    fw.get_one_reg(0, FwReg::PsciVersion.id()).ok(),
                    s.register(FwReg::PsciVersion)
                );
                for reg in FwReg::ALL.into_iter().filter(|r| r.is_bitmap()) {
                    assert_eq!(fw.bitmap(reg), s.register(reg).unwrap_or(0), "{reg}");
                }
            }
        }
    }
}

#[test]
fn baseline_of_the_built_in_hosts() {
    let pool = builtin();
    let b = baseline(&pool).unwrap();
    assert_eq!(b.hosts, pool.len());
    // Every 6.12 host stops at 1.1; every host has 0.2, 1.0, 1.1.
    assert_eq!(b.psci_version, PsciVersion::V1_1);
    assert_eq!(b.psci_versions.iter().count(), 3);
    let regs: Vec<(FwReg, u64)> = b.registers().collect();
    assert_eq!(
        regs,
        [
            (FwReg::PsciVersion, 0x1_0001),
            (FwReg::StdBmap, 1),
            (FwReg::StdHypBmap, 1),
            (FwReg::VendorHypBmap, 3),
            (FwReg::VendorHypBmap2, 0),
        ]
    );
    // Levels differ: cortex-a72 reports 0 for all three, cortex-a53 (and cortex-a35) 2, 3, 2.
    assert!(!b.any_to_any());
    let wa2 = b.workarounds[1];
    assert_eq!((wa2.lowest, wa2.highest), (0, 3));
    let highest = &pool[wa2.highest_host];
    assert_eq!(
        highest.workaround_level(FwReg::SmcccArchWorkaround2),
        Some(3)
    );
    assert!(
        ["cortex-a35", "cortex-a53"].contains(&highest.cpu()),
        "{}",
        highest.name()
    );
    // Every host has system suspend; the 6.1 hosts have no SMCCC filter (measured).
    assert!(b.system_suspend);
    assert!(!b.smccc_filter);
}

#[test]
fn baseline_vms_move_between_every_pair_of_a_uniform_pool() {
    let pool = [host(M612), host(M72)];
    let b = baseline(&pool).unwrap();
    assert!(b.any_to_any());
    for src in &pool {
        let mut fw = test_support::vm(src, 1, false);
        b.apply(&mut fw).unwrap();
        fw.vcpu_run(0).unwrap();
        let s = fw.save().unwrap();
        for dest in &pool {
            let r = check(&s, dest);
            assert_ne!(
                r.verdict,
                Verdict::Incompatible,
                "{} -> {}",
                src.name(),
                dest.name()
            );
            Firmware::new(dest)
                .restore(&s, RestorePolicy::Armfw)
                .unwrap();
        }
    }
}

#[test]
fn baseline_errors() {
    assert_eq!(baseline(&[]), Err(BaselineError::EmptyPool));
    let no_std = edited(M612, |v| {
        v["registers"].as_array_mut().unwrap().remove(4);
    });
    assert_eq!(
        baseline(&[host(M612), no_std]),
        Err(BaselineError::BitmapMissing {
            reg: FwReg::StdBmap,
            host: 1
        })
    );
}

#[test]
fn baseline_apply_needs_an_initialised_vcpu_before_the_first_run() {
    let b = baseline(&[host(M612)]).unwrap();
    let mut fw = Firmware::new(&host(M612));
    assert_eq!(b.apply(&mut fw), Err(ApplyError::NoVcpu));
    fw.add_vcpu().unwrap();
    fw.init_vcpu(
        0,
        VcpuFeatures {
            psci_0_2: true,
            power_off: false,
        },
    )
    .unwrap();
    fw.vcpu_run(0).unwrap();
    assert_eq!(b.apply(&mut fw), Err(ApplyError::HasRun));
}

#[test]
fn baseline_of_a_large_pool_does_not_need_copies() {
    let (a, b) = (host(M612), host(M72));
    let pool = std::iter::repeat_n([&a, &b], 50_000).flatten();
    let base = baseline(pool).unwrap();
    assert_eq!(base.hosts, 100_000);
    assert_eq!(base.psci_version, PsciVersion::V1_1);
}

#[test]
fn filter_ranges_cannot_go_to_6_1_which_has_no_smccc_filter() {
    // Measured on 6.1.192: every SMCCC filter request to the VM gives EINVAL.
    const M61: &str = "linux-6.1.192-max";
    let mut fw = test_support::vm(&host(M612), 1, false);
    fw.set_smccc_filter(0xc400_0003, 1, 2, [0; 15]).unwrap();
    fw.vcpu_run(0).unwrap();
    let s = fw.save().unwrap();
    let r = check(&s, &host(M61));
    assert_eq!(r.verdict, Verdict::Incompatible);
    assert_eq!(
        r.findings()
            .find(|f| f.is_refused())
            .map(|f| (f.subject, f.rule)),
        Some((Subject::SmcccFilter, Rule::SmcccFilterMissing))
    );
    assert_eq!(
        r.strict,
        StrictOutcome::Fails {
            step: Step::SetSmcccFilter { range: 0 },
            errno: Errno::EINVAL
        }
    );
    // Without filter ranges, 6.1 and 6.12 hosts of one CPU model take each other's VMs.
    assert_eq!(
        check(&state(M61, &[]), &host(M612)).verdict,
        Verdict::Compatible
    );
    assert_eq!(
        check(&state(M612, &[]), &host(M61)).verdict,
        Verdict::Compatible
    );
}
