//! QEMU's load rules on the model, against what real QEMU did (docs/qemu.md, measured with
//! Debian's QEMU 10.0.13 between Debian's 6.12.117 and 7.2.13 on `-cpu neoverse-n1` hosts).

use super::*;
use crate::abi::vcpu_reg::sysreg_id;

fn host(name: &str) -> Profile {
    crate::profile::builtin_named(name).unwrap()
}

const N1_612: &str = "linux-6.12.117-neoverse-n1";
const N1_72: &str = "linux-7.2.13-neoverse-n1";
const PMU_OFF: HostCpu = HostCpu {
    pmu: false,
    sve: true,
    pauth: true,
};

fn saved(name: &str) -> Vec<Incoming> {
    Incoming::default_vm(&host(name), PMU_OFF.features(&host(name)), 1).unwrap()
}

#[test]
fn more_cpregs_than_the_destination_lists_fail_at_the_count() {
    // QEMU 10.0: "Invalid value 184 expecting positive value <= 182".
    let p = predict(QemuRelease::Qemu10_0, &saved(N1_612), &host(N1_72), PMU_OFF);
    assert_eq!(
        p.stop,
        Some(LoadStop::Length {
            vcpu: 0,
            incoming: 184,
            destination: 182
        })
    );
    assert_eq!(
        p.messages()[..2],
        [
            "Invalid value 184 expecting positive value <= 182",
            "Failed to load cpu:cpreg_vmstate_array_len"
        ]
    );
}

#[test]
fn a_value_the_destination_refuses_fails_the_writes() {
    // QEMU 10.0: "Failed to put registers after init: Invalid argument".
    let p = predict(QemuRelease::Qemu10_0, &saved(N1_72), &host(N1_612), PMU_OFF);
    let Some(LoadStop::Refused { vcpu: 0, writes }) = &p.stop else {
        panic!("{:?}", p.stop)
    };
    assert!(!writes.is_empty());
    assert!(
        p.messages()
            .iter()
            .any(|m| m == "Failed to put registers after init: Invalid argument")
    );
}

#[test]
fn the_same_host_loads() {
    for name in [N1_612, N1_72] {
        for r in QemuRelease::ALL {
            let p = predict(r, &saved(name), &host(name), PMU_OFF);
            assert_eq!(p.stop, None, "{r} on {name}");
        }
    }
}

fn walk(
    release: QemuRelease,
    ids: &[u64],
    incoming: &[(u64, u64)],
) -> (Option<u64>, Vec<Unmatched>, Vec<u64>) {
    let mut values = vec![0; ids.len()];
    let mut unmatched = Vec::new();
    let fail = merge(release, 0, ids, &mut values, incoming, &mut unmatched);
    (fail, unmatched, values)
}

const A: u64 = 0x6030_0000_0013_c000;
const B: u64 = 0x6030_0000_0013_c005;
const BMAP2: u64 = 0x6030_0000_0016_0003;
const PIR: u64 = 0x6030_0000_0013_c513;

#[test]
fn up_to_11_0_the_walk_stops_at_the_end_of_either_list() {
    // An incoming id above the destination's largest is never looked at.
    let (fail, unmatched, values) = walk(
        QemuRelease::Qemu10_0,
        &[A, B],
        &[(A, 1), (B, 2), (BMAP2, 3)],
    );
    assert_eq!(fail, None);
    assert_eq!(values, [1, 2]);
    assert_eq!(unmatched[0].handling, Handling::Unwalked);
    // In the middle, the first one fails the load.
    let (fail, ..) = walk(QemuRelease::Qemu7_2, &[A, B], &[(A, 1), (A + 1, 9), (B, 2)]);
    assert_eq!(fail, Some(A + 1));
}

#[test]
fn qemu_11_1_tolerates_its_list_and_decides_on_the_last_incoming_only_id() {
    let r = QemuRelease::Qemu11_1;
    // Above the largest: reported.
    assert_eq!(
        walk(r, &[A, B], &[(A, 1), (B, 2), (B + 1, 0)]).0,
        Some(B + 1)
    );
    // VENDOR_HYP_BMAP_2 with the value 0 is tolerated, with another value not.
    assert_eq!(walk(r, &[A, B], &[(A, 1), (B, 2), (BMAP2, 0)]).0, None);
    assert_eq!(
        walk(r, &[A, B], &[(A, 1), (B, 2), (BMAP2, 1)]).0,
        Some(BMAP2)
    );
    // PIR_EL1 on either side only.
    assert_eq!(walk(r, &[A, B], &[(A, 1), (B, 2), (PIR, 5)]).0, None);
    let (fail, unmatched, _) = walk(r, &[A, B, PIR], &[(A, 1), (B, 2)]);
    assert_eq!(fail, None);
    assert_eq!(unmatched[0].handling, Handling::Tolerated);
    // A destination-only id that is not tolerated keeps its value.
    let (fail, unmatched, values) = walk(r, &[A, B], &[(B, 2)]);
    assert_eq!(
        (fail, unmatched[0].handling, values),
        (None, Handling::Kept, vec![0, 2])
    );
    // An unknown id followed by a tolerated one: reported, but the load goes on.
    let (fail, unmatched, _) = walk(r, &[A, B], &[(A, 1), (A + 1, 9), (B, 2), (BMAP2, 0)]);
    assert_eq!(fail, None);
    assert_eq!(unmatched[0].handling, Handling::Reported);
}

#[test]
fn qemu_11_1_loads_6_12_onto_7_2_and_names_what_7_2_refuses() {
    let p = predict(QemuRelease::Qemu11_1, &saved(N1_612), &host(N1_72), PMU_OFF);
    assert_eq!(p.stop, None, "{:?}", p.messages());
    let p = predict(QemuRelease::Qemu11_1, &saved(N1_72), &host(N1_612), PMU_OFF);
    assert!(
        matches!(p.stop, Some(LoadStop::Refused { .. })),
        "{:?}",
        p.stop
    );
    assert!(p.named_register().is_some());
}

#[test]
fn qemu_names_registers_as_kvm_print_register_name_does() {
    // As Debian's QEMU 11.1.3 printed them.
    assert_eq!(
        qemu_reg_name(sysreg_id(3, 0, 0, 5, 0)),
        "system register op0:3 op1:0 crn:0 crm:5 op2:0"
    );
    assert_eq!(
        qemu_reg_name(0x6020_0000_0011_0003),
        "demuxed reg 6020000000110003"
    );
    assert_eq!(qemu_reg_name(0x6030_0000_0014_0000), "fw reg 0");
    assert_eq!(qemu_reg_name(BMAP2), "fw feat reg 3");
}

#[test]
fn host_cpu_options() {
    assert_eq!(HostCpu::parse("host"), Ok(HostCpu::default()));
    assert_eq!(HostCpu::parse("host,pmu=off"), Ok(PMU_OFF));
    assert!(HostCpu::parse("max").is_err());
    assert!(HostCpu::parse("host,pmu").is_err());
    assert!(HostCpu::parse("host,pmu=yes").is_err());
    assert!(HostCpu::parse("host,aes=on").is_err());
    let max = host("linux-6.12.117-max");
    let f = HostCpu::parse("host,pmu=off").unwrap().features(&max);
    assert!(
        !f.has(CpuFeature::PmuV3) && f.has(CpuFeature::Sve) && f.has(CpuFeature::PtrauthGeneric)
    );
    let n1 = HostCpu::default().features(&host(N1_612));
    assert_eq!(n1, CpuFeatures::NONE.with(CpuFeature::PmuV3));
}

#[test]
fn remedies_come_from_the_guests_id_registers_and_the_destinations_rules() {
    use crate::qemu::advice::{Remedy, remedies};
    // 6.12 -> 7.2: 7.2 hides TCR2_EL1, PIRE0_EL1 and PIR_EL1 from a guest without TCRX and
    // S1PIE (and lists VENDOR_HYP_BMAP_2, which 6.12 does not: 184 - 3 + 1 = 182).
    let inc = saved(N1_612);
    let p = predict(QemuRelease::Qemu10_0, &inc, &host(N1_72), PMU_OFF);
    let r = remedies(&p, &inc, &host(N1_72), PMU_OFF);
    assert!(r.contains(&Remedy::Release(QemuRelease::Qemu11_1)), "{r:?}");
    let Some(Remedy::LeaveOut(ids)) = r.iter().find(|x| matches!(x, Remedy::LeaveOut(_))) else {
        panic!("{r:?}")
    };
    let ids: Vec<u64> = ids.iter().map(|i| i.0).collect();
    assert_eq!(
        ids,
        [
            sysreg_id(3, 0, 2, 0, 3),
            sysreg_id(3, 0, 10, 2, 2),
            sysreg_id(3, 0, 10, 2, 3)
        ]
    );
    // 7.2 -> 6.12: the saved PSCI 1.3, which 6.12 does not offer.
    let inc = saved(N1_72);
    let p = predict(QemuRelease::Qemu10_0, &inc, &host(N1_612), PMU_OFF);
    let r = remedies(&p, &inc, &host(N1_612), PMU_OFF);
    let Some(Remedy::Value { id, saved, .. }) = r.first() else {
        panic!("{r:?}")
    };
    assert_eq!((*id, *saved), (0x6030_0000_0014_0000, 0x1_0003));
    assert!(r[0].text().contains("PSCI versions"), "{}", r[0].text());
}
