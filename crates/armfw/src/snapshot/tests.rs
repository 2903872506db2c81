//! Snapshot tests. Expected register values are the measured defaults of the built-in hosts
//! (`crates/armfw/profiles/`, `docs/kernel-differences.md`) and the kernel's rules, not this code's output.

use serde_json::{Value, json};

use super::*;
use crate::abi::{Errno, FwReg};
use crate::firmware::{Action, Call, Conduit, Firmware, VcpuFeatures, VcpuStart};
use crate::migrate::{RestoreError, RestorePolicy, SaveError};
use crate::profile::builtin_named;
use crate::scenario::ModelServices;
use crate::test_support;

/// An edit of a test input.
type Edit<T> = fn(&mut T);

const M612: &str = "linux-6.12.117-max";
const M72: &str = "linux-7.2.13-max";

/// A VM on `host` with `n` vCPUs (vCPU 0 running, the others powered off), after `setup`.
fn vm(host: &str, n: usize, setup: impl FnOnce(&mut Firmware)) -> Firmware {
    let mut fw = test_support::vm(&builtin_named(host).unwrap(), n, true);
    setup(&mut fw);
    fw.vcpu_run(0).unwrap();
    fw
}

fn saved(host: &str) -> Snapshot {
    vm(host, 2, |_| {}).save().unwrap()
}

#[test]
fn crc32_matches_the_standard_check_value() {
    // The CRC-32/ISO-HDLC check value (zlib's crc32 of "123456789").
    assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    assert_eq!(crc32(b""), 0);
}

#[test]
fn save_on_7_2_lists_eight_registers_with_the_measured_defaults() {
    let s = saved(M72);
    let got: Vec<(u64, u64)> = s.vm.registers.iter().map(|r| (r.id, r.value)).collect();
    assert_eq!(
        got,
        [
            (0x6030_0000_0014_0000, 0x1_0003),
            (0x6030_0000_0014_0001, 2),
            (0x6030_0000_0014_0002, 0),
            (0x6030_0000_0014_0003, 0),
            (0x6030_0000_0016_0000, 1),
            (0x6030_0000_0016_0001, 1),
            (0x6030_0000_0016_0002, 3),
            (0x6030_0000_0016_0003, 0),
        ]
    );
    assert_eq!(s.source.kernel, "7.2.13+deb14-arm64");
    assert!(s.vm.psci_0_2 && s.vm.has_run);
    assert_eq!(
        s.vcpus.iter().map(|v| v.mp_state).collect::<Vec<_>>(),
        [MpState::Runnable, MpState::Stopped]
    );
}

#[test]
fn save_on_6_12_has_seven_registers_and_psci_1_1() {
    let s = saved(M612);
    assert_eq!(s.vm.registers.len(), 7);
    assert_eq!(s.psci_version(), Some(PsciVersion::V1_1));
    assert_eq!(s.register(FwReg::VendorHypBmap2), None);
}

#[test]
fn save_records_written_values_filter_ranges_and_ipas() {
    let fw = vm(M72, 2, |fw| {
        fw.set_one_reg(0, FwReg::PsciVersion.id(), 0x1_0000)
            .unwrap();
        fw.set_one_reg(0, FwReg::StdBmap.id(), 0).unwrap();
        fw.set_smccc_filter(0x8400_0000, 1, 1, [0; 15]).unwrap();
        fw.set_pv_time_ipa(1, 0x8000_0040).unwrap();
        fw.enable_system_suspend().unwrap();
    });
    let s = fw.save().unwrap();
    assert_eq!(s.psci_version(), Some(PsciVersion::V1_0));
    assert_eq!(s.register(FwReg::StdBmap), Some(0));
    assert_eq!(
        s.vm.smccc_filter,
        [FilterRange {
            base: 0x8400_0000,
            nr_functions: 1,
            action: FilterAction::Deny
        }]
    );
    assert_eq!(s.vcpus[1].pv_time_ipa, Some(0x8000_0040));
    assert!(s.vm.system_suspend);
}

#[test]
fn save_of_a_vm_without_vcpus_or_with_an_uninitialised_vcpu_fails() {
    let p = builtin_named(M612).unwrap();
    let mut fw = Firmware::new(&p);
    assert_eq!(fw.save(), Err(SaveError::NoVcpus));
    fw.add_vcpu().unwrap();
    assert_eq!(fw.save(), Err(SaveError::NotInitialised(0)));
}

#[test]
fn save_of_mixed_psci_families_fails() {
    let p = builtin_named(M612).unwrap();
    let mut fw = Firmware::new(&p);
    for (i, psci_0_2) in [true, false].into_iter().enumerate() {
        fw.add_vcpu().unwrap();
        fw.init_vcpu(
            i,
            VcpuFeatures {
                psci_0_2,
                power_off: false,
            },
        )
        .unwrap();
    }
    assert_eq!(fw.save(), Err(SaveError::MixedPsciFamilies(1)));
}

#[test]
fn json_form_round_trips_with_its_checksum() {
    let s = vm(M72, 3, |fw| {
        fw.set_smccc_filter(0x8600_0000, 2, 2, [0; 15]).unwrap();
        fw.set_pv_time_ipa(2, 0x4000).unwrap();
    })
    .save()
    .unwrap();
    let v = s.to_json();
    assert_eq!(v["format"], "armfw-snapshot/1.0");
    assert_eq!(
        v["checksum"],
        format!("crc32:{:#010x}", crc32(&s.canonical_body()))
    );
    let text = serde_json::to_string_pretty(&v).unwrap();
    assert_eq!(Snapshot::from_json(&text).unwrap(), s);
    assert_eq!(Snapshot::load(text.as_bytes()).unwrap(), s);
}

#[test]
fn binary_form_round_trips_and_starts_with_the_magic() {
    let s = saved(M72);
    let b = s.to_bytes();
    assert_eq!(&b[..8], b"ARMFWSNP");
    assert_eq!(&b[8..12], &[1, 0, 0, 0]);
    assert_eq!(Snapshot::from_bytes(&b).unwrap(), s);
    assert_eq!(Snapshot::load(&b).unwrap(), s);
}

#[test]
fn edited_value_fails_the_checksum() {
    let mut v = saved(M72).to_json();
    v["vm"]["registers"][0]["value"] = json!("0x10001");
    let e = Snapshot::from_value(&v).unwrap_err();
    assert!(matches!(e, Error::Checksum { .. }), "{e}");
}

#[test]
fn every_truncation_of_the_binary_form_is_an_error() {
    let b = saved(M72).to_bytes();
    for len in 0..b.len() {
        assert!(Snapshot::from_bytes(&b[..len]).is_err(), "length {len}");
    }
    let mut long = b.clone();
    long.push(0);
    assert_eq!(Snapshot::from_bytes(&long), Err(Error::TrailingBytes(1)));
}

#[test]
fn every_single_byte_corruption_of_the_binary_form_is_refused() {
    let b = vm(M72, 2, |fw| {
        fw.set_smccc_filter(0x8400_0000, 1, 1, [0; 15]).unwrap();
    })
    .to_bytes_for_test();
    for i in 0..b.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut c = b.clone();
            c[i] ^= flip;
            assert!(Snapshot::from_bytes(&c).is_err(), "byte {i} ^ {flip:#x}");
        }
    }
}

impl Firmware {
    fn to_bytes_for_test(&self) -> Vec<u8> {
        self.save().unwrap().to_bytes()
    }
}

#[test]
fn binary_body_with_a_valid_checksum_but_bad_fields_names_the_field() {
    let mut s = saved(M612);
    s.vcpus[1].pv_time_ipa = Some(0x41);
    let e = Snapshot::from_bytes(&s.to_bytes()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "vcpus[1].pv_time_ipa: must be 64-byte aligned"
    );
}

#[test]
fn newer_versions_and_other_formats_are_refused_with_clear_errors() {
    let mut v = saved(M612).to_json();
    let reads = "this armfw reads armfw-snapshot 1.0 and 2.0 to 2.0";
    for (format, want) in [
        (
            "armfw-snapshot/3.0",
            format!("format version 3.0 is not readable: {reads}"),
        ),
        (
            "armfw-snapshot/2.1",
            format!("format version 2.1 is not readable: {reads}"),
        ),
        (
            "armfw-snapshot/1.1",
            format!("format version 1.1 is not readable: {reads}"),
        ),
        (
            "armfw-snapshot/0.9",
            format!("format version 0.9 is not readable: {reads}"),
        ),
        (
            "armfw-snapshot/2.0",
            "machine: is required in format 2.0".to_string(),
        ),
        (
            "armfw-profile/1",
            "not an armfw snapshot: format is \"armfw-profile/1\", expected \"armfw-snapshot/2.0\""
                .to_string(),
        ),
        (
            "armfw-snapshot/1",
            "format: \"armfw-snapshot/1\": the version must be major.minor, e.g. 2.0".to_string(),
        ),
    ] {
        v["format"] = json!(format);
        assert_eq!(Snapshot::from_value(&v).unwrap_err().to_string(), want);
    }
    let mut b = saved(M612).to_bytes();
    b[8] = 3;
    assert_eq!(
        Snapshot::from_bytes(&b),
        Err(Error::UnsupportedVersion {
            found: FormatVersion { major: 3, minor: 0 }
        })
    );
}

#[test]
fn json_errors_name_the_field() {
    let base = saved(M612).to_json();
    let cases: [(&str, Edit<Value>); 7] = [
        ("vcpus[1].mp_state", |v| {
            v["vcpus"][1]["mp_state"] = json!("HALTED")
        }),
        ("vm.registers[2].id", |v| {
            v["vm"]["registers"][2]["id"] = json!("0x1x")
        }),
        ("vm.registers[0].name", |v| {
            v["vm"]["registers"][0]["name"] = json!("STD_BMAP")
        }),
        ("vm.psci_0_2", |v| v["vm"]["psci_0_2"] = json!("yes")),
        ("vm.extra", |v| v["vm"]["extra"] = json!(1)),
        ("source.kernel", |v| {
            v["source"]
                .as_object_mut()
                .unwrap()
                .remove("kernel")
                .map(|_| ())
                .unwrap()
        }),
        ("checksum", |v| v["checksum"] = json!("crc32:0xfffffffff")),
    ];
    for (path, edit) in cases {
        let mut v = base.clone();
        edit(&mut v);
        match Snapshot::from_value(&v) {
            Err(Error::Field(f)) => assert_eq!(f.path, path),
            other => panic!("{path}: {other:?}"),
        }
    }
}

#[test]
fn non_json_and_non_objects_are_refused() {
    assert!(matches!(Snapshot::from_json("{"), Err(Error::Json(_))));
    assert!(matches!(
        Snapshot::from_json("[1]"),
        Err(Error::NotASnapshot(_))
    ));
    assert!(matches!(
        Snapshot::from_json("{}"),
        Err(Error::NotASnapshot(_))
    ));
    assert!(matches!(
        Snapshot::load(&[0xff, 0xfe]),
        Err(Error::NotASnapshot(_))
    ));
}

#[test]
fn validate_refuses_values_kvm_never_reports() {
    let cases: [(&str, Edit<Snapshot>); 7] = [
        ("vm.registers[0].value", |s| {
            s.vm.registers[0].value = 0x1_0004
        }),
        ("vm.registers[0].value", |s| s.vm.registers[0].value = 0x1),
        ("vm.registers[1].value", |s| s.vm.registers[1].value = 3),
        ("vm.registers[2].value", |s| s.vm.registers[2].value = 0x13),
        ("vm.registers[1].id", |s| s.vm.registers.swap(0, 1)),
        ("vm.registers[0].id", |s| {
            s.vm.registers[0].id = 0x6020_0000_0014_0000
        }),
        ("vcpus[1].pending_start", |s| {
            s.vcpus[1].pending_start = Some(PendingStart {
                entry: 0,
                context_id: 0,
            })
        }),
    ];
    for (path, edit) in cases {
        let mut s = saved(M612);
        edit(&mut s);
        assert_eq!(s.validate().unwrap_err().path, path);
    }
    let mut s = saved(M612);
    s.vm.registers.remove(0);
    assert_eq!(s.validate().unwrap_err().path, "vm.registers");
    let mut s = saved(M612);
    s.vm.smccc_filter.push(FilterRange {
        base: 0x8000_0000,
        nr_functions: 1,
        action: FilterAction::Deny,
    });
    assert_eq!(s.validate().unwrap_err().path, "vm.smccc_filter[0]");
}

#[test]
fn pending_cpu_on_start_is_saved_and_handed_back_by_restore() {
    let mut fw = vm(M612, 2, |_| {});
    let out = fw
        .handle_call(
            0,
            &Call::new(Conduit::Hvc, [0xc400_0003, 1, 0x4000_1000, 0x55]),
            &mut ModelServices::default(),
        )
        .unwrap();
    let Action::StartVcpu(start) = out.action else {
        panic!("CPU_ON starts vCPU 1")
    };
    let s = fw.save_with_pending(&[start]).unwrap();
    assert_eq!(
        s.vcpus[1].pending_start,
        Some(PendingStart {
            entry: 0x4000_1000,
            context_id: 0x55
        })
    );
    let mut dest = Firmware::new(&builtin_named(M612).unwrap());
    let r = dest.restore(&s, RestorePolicy::Armfw).unwrap();
    assert_eq!(r.starts, [start]);
    assert_eq!(dest.mp_state(1), Ok(MpState::Runnable));
}

#[test]
fn pending_start_for_a_stopped_vcpu_is_refused_at_save() {
    let fw = vm(M612, 2, |_| {});
    let start = VcpuStart {
        vcpu: 1,
        entry: 0,
        context_id: 0,
    };
    assert_eq!(
        fw.save_with_pending(&[start]),
        Err(SaveError::BadPendingStart(1))
    );
}

#[test]
fn restore_on_the_same_host_gives_back_the_same_state() {
    let fw = vm(M72, 3, |fw| {
        fw.set_one_reg(0, FwReg::PsciVersion.id(), 0x1_0002)
            .unwrap();
        fw.set_one_reg(0, FwReg::VendorHypBmap2.id(), 0x3).unwrap();
        fw.set_smccc_filter(0xc600_0040, 2, 2, [0; 15]).unwrap();
        fw.set_pv_time_ipa(0, 0x1000).unwrap();
        fw.enable_system_suspend().unwrap();
        fw.set_mp_state(2, 10).unwrap();
    });
    let s = fw.save().unwrap();
    for policy in [RestorePolicy::Strict, RestorePolicy::Armfw] {
        let mut dest = Firmware::new(fw.profile());
        dest.restore(&s, policy).unwrap();
        let mut again = dest.save().unwrap();
        assert!(!again.vm.has_run, "a restored VM has not run yet");
        again.vm.has_run = true;
        assert_eq!(again, s);
    }
}

#[test]
fn failed_strict_restore_changes_nothing() {
    // 7.2 VM with PSCI pinned to 1.1: the strict restore onto 6.12 writes VENDOR_HYP_BMAP_2,
    // which 6.12 does not have (ENOENT, measured).
    let s = vm(M72, 2, |fw| {
        fw.set_one_reg(0, FwReg::PsciVersion.id(), 0x1_0001)
            .unwrap();
    })
    .save()
    .unwrap();
    let p = builtin_named(M612).unwrap();
    let mut dest = Firmware::new(&p);
    for i in 0..2 {
        dest.add_vcpu().unwrap();
        dest.init_vcpu(
            i,
            VcpuFeatures {
                psci_0_2: true,
                power_off: false,
            },
        )
        .unwrap();
    }
    dest.set_one_reg(0, FwReg::StdBmap.id(), 0).unwrap();
    let before = format!("{dest:?}");
    let e = dest.restore(&s, RestorePolicy::Strict).unwrap_err();
    assert_eq!(
        e,
        RestoreError::Failed {
            step: Step::SetOneReg {
                vcpu: 0,
                id: FwReg::VendorHypBmap2.id()
            },
            errno: Errno::ENOENT
        }
    );
    assert_eq!(format!("{dest:?}"), before);
    // armfw's plan skips the register (0 means its absence) and succeeds.
    dest.restore(&s, RestorePolicy::Armfw).unwrap();
    assert_eq!(dest.get_one_reg(1, FwReg::PsciVersion.id()), Ok(0x1_0001));
    assert_eq!(dest.get_one_reg(0, FwReg::StdBmap.id()), Ok(1));
}

#[test]
fn armfw_restore_of_an_incompatible_snapshot_names_the_reason_and_changes_nothing() {
    let s = saved(M72);
    let mut dest = Firmware::new(&builtin_named(M612).unwrap());
    let before = format!("{dest:?}");
    let e = dest.restore(&s, RestorePolicy::Armfw).unwrap_err();
    let RestoreError::Incompatible(f) = e else {
        panic!("{e}")
    };
    assert_eq!(
        f.subject,
        crate::compat::Subject::Register(FwReg::PsciVersion.id())
    );
    assert_eq!(format!("{dest:?}"), before);
}

#[test]
fn restore_into_a_vm_that_has_run_is_refused() {
    let s = saved(M612);
    let mut dest = vm(M612, 2, |_| {});
    assert_eq!(
        dest.restore(&s, RestorePolicy::Strict),
        Err(RestoreError::HasRun)
    );
}

#[test]
fn restore_into_a_vm_with_another_vcpu_count_is_refused() {
    let s = saved(M612);
    let mut dest = Firmware::new(&builtin_named(M612).unwrap());
    dest.add_vcpu().unwrap();
    assert_eq!(
        dest.restore(&s, RestorePolicy::Strict),
        Err(RestoreError::VcpuCount { snapshot: 2, vm: 1 })
    );
}

#[test]
fn created_on_gives_the_default_state_of_the_host() {
    let s = Snapshot::created_on(&builtin_named(M72).unwrap(), 1).unwrap();
    assert_eq!(s.psci_version(), Some(PsciVersion::V1_3));
    assert_eq!(s.vcpus.len(), 1);
    assert!(s.vm.has_run);
}

#[test]
fn every_truncation_of_the_json_form_is_an_error() {
    let text = serde_json::to_string(&saved(M72).to_json()).unwrap();
    for (i, _) in text.char_indices() {
        assert!(Snapshot::from_json(&text[..i]).is_err(), "length {i}");
    }
}

#[test]
fn json_with_huge_counts_is_refused_before_allocation() {
    let mut v = saved(M612).to_json();
    v["vcpus"] = Value::Array(vec![json!({"mp_state": "RUNNABLE"}); 513]);
    let e = Snapshot::from_value(&v).unwrap_err();
    assert_eq!(e.to_string(), "vcpus: more than 512 vCPUs");
    let mut v = saved(M612).to_json();
    v["vm"]["registers"] = Value::Array(vec![json!({"id": 0, "value": 0}); 17]);
    let e = Snapshot::from_value(&v).unwrap_err();
    assert_eq!(e.to_string(), "vm.registers: more than 16 registers");
}

#[test]
fn whole_vm_parts_are_validated_field_by_field() {
    let p = crate::profile::builtin_named("linux-7.2.13-max").unwrap();
    let whole = Snapshot::created_whole_on(&p, 2, crate::abi::CpuFeatures::NONE, true).unwrap();
    assert_eq!(whole.format_version(), FORMAT_VERSION);
    let m = whole.machine().unwrap().clone();
    assert_eq!(m.vcpus.len(), 2);
    let (source, vm, vcpus) = whole.clone().into_parts();
    let base = Snapshot::new(source, vm, vcpus).unwrap();
    assert_eq!(base.format_version(), FORMAT_1_0);
    let bad = |edit: &dyn Fn(&mut Machine)| {
        let mut m = m.clone();
        edit(&mut m);
        base.clone().with_machine(m).unwrap_err().path
    };
    assert_eq!(
        bad(&|m| {
            m.vcpus.pop();
        }),
        "machine.vcpus"
    );
    assert_eq!(bad(&|m| m.sve_vls = Some(vec![1; 64])), "machine.sve_vls");
    assert_eq!(
        bad(&|m| m.features = crate::abi::CpuFeatures::of(&[crate::abi::CpuFeature::Sve])),
        "machine.sve_vls"
    );
    assert_eq!(
        bad(&|m| {
            let first = m.reg_list[0];
            m.reg_list.push(first);
        }),
        format!("machine.reg_list[{}]", m.reg_list.len())
    );
    assert_eq!(
        bad(&|m| {
            m.vm_registers.pop();
        }),
        "machine.vm_registers"
    );
    assert_eq!(
        bad(&|m| m.vcpus[1][0].value.push(0)),
        "machine.vcpus[1].registers[0].value"
    );
    assert_eq!(
        bad(&|m| m.vcpus[0].swap(0, 1)),
        "machine.vcpus[0].registers[0].id"
    );
    assert_eq!(
        bad(&|m| m.reg_list.retain(|&id| !OneRegId(id).is_firmware_class())),
        "machine.reg_list"
    );
    // Both forms carry the part; a 1.0 reader's file has none.
    assert_eq!(Snapshot::from_bytes(&whole.to_bytes()).unwrap(), whole);
    assert_eq!(
        Snapshot::from_json(&whole.to_json().to_string()).unwrap(),
        whole
    );
    let mut v = whole.to_json();
    v["format"] = json!("armfw-snapshot/1.0");
    assert_eq!(
        Snapshot::from_value(&v).unwrap_err().to_string(),
        "machine: the whole-vCPU part needs format 2.0"
    );
}
