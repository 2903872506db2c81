//! Dispatch tests across the services.

use super::ret1;
use crate::abi::psci::*;
use crate::abi::smccc::*;
use crate::abi::{Errno, Function, FwReg};
use crate::firmware::{
    Action, Call, CallOutcome, Conduit, Firmware, KVM_MP_STATE_RUNNABLE, KVM_MP_STATE_STOPPED,
    PtpCounter, PtpTime, Services, VcpuError,
};
use crate::firmware::{MpState, VcpuFeatures};
use crate::profile::{Profile, builtin_named};

/// Services whose random words and time are known, to check where bits land.
struct Fixed {
    words: Vec<u64>,
    ptp: Option<PtpTime>,
    counters: Vec<PtpCounter>,
}

impl Services for Fixed {
    fn random_u64(&mut self) -> u64 {
        self.words.remove(0)
    }
    fn ptp_time(&mut self, c: PtpCounter) -> Option<PtpTime> {
        self.counters.push(c);
        self.ptp
    }
}

fn fixed() -> Fixed {
    Fixed {
        words: vec![u64::MAX; 3],
        ptp: None,
        counters: Vec::new(),
    }
}

fn vm(profile: &Profile, vcpus: usize) -> Firmware {
    crate::test_support::vm(profile, vcpus, false)
}

fn host() -> Profile {
    crate::test_support::host("linux-6.12.117-max")
}

fn call(fw: &mut Firmware, s: &mut Fixed, conduit: Conduit, x: [u64; 4]) -> CallOutcome {
    fw.handle_call(0, &Call::new(conduit, x), s).unwrap()
}

#[test]
fn trng_rnd32_places_bits_95_to_0_in_x1_x2_x3_and_clears_the_rest() {
    let mut fw = vm(&host(), 1);
    let mut s = Fixed {
        words: vec![0x1111_2222_3333_4444, 0x5555_6666_7777_8888],
        ..fixed()
    };
    let out = call(
        &mut fw,
        &mut s,
        Conduit::Hvc,
        [u64::from(ARM_SMCCC_TRNG_RND32), 96, 0, 0],
    );
    assert_eq!(out.x, [0, 0x7777_8888, 0x1111_2222, 0x3333_4444]);
    let mut s = fixed();
    let out = call(
        &mut fw,
        &mut s,
        Conduit::Hvc,
        [u64::from(ARM_SMCCC_TRNG_RND32), 40, 0, 0],
    );
    assert_eq!(out.x, [0, 0, 0xff, 0xffff_ffff]);
    assert_eq!(s.words.len(), 2, "one word drawn for 40 bits");
}

#[test]
fn trng_rnd64_places_bits_191_to_0_in_x1_x2_x3() {
    let mut fw = vm(&host(), 1);
    let mut s = Fixed {
        words: vec![1, 2, 3],
        ..fixed()
    };
    let out = call(
        &mut fw,
        &mut s,
        Conduit::Hvc,
        [u64::from(ARM_SMCCC_TRNG_RND64), 192, 0, 0],
    );
    assert_eq!(out.x, [0, 3, 2, 1]);
    let mut s = fixed();
    let out = call(
        &mut fw,
        &mut s,
        Conduit::Hvc,
        [u64::from(ARM_SMCCC_TRNG_RND64), 65, 0, 0],
    );
    assert_eq!(out.x, [0, 0, 1, u64::MAX]);
}

#[test]
fn ptp_answers_time_and_counter_in_halves_and_fails_without_a_counter_clock() {
    let mut fw = vm(&host(), 1);
    let mut s = Fixed {
        ptp: Some(PtpTime {
            realtime_ns: 0x0000_0001_0000_0002,
            counter: 0x0000_0003_0000_0004,
        }),
        ..fixed()
    };
    let out = call(
        &mut fw,
        &mut s,
        Conduit::Hvc,
        [u64::from(ARM_SMCCC_VENDOR_HYP_KVM_PTP_FUNC_ID), 1, 0, 0],
    );
    assert_eq!(out.x, [1, 2, 3, 4]);
    assert_eq!(s.counters, [PtpCounter::Physical]);
    let mut s = fixed();
    let out = call(
        &mut fw,
        &mut s,
        Conduit::Hvc,
        [u64::from(ARM_SMCCC_VENDOR_HYP_KVM_PTP_FUNC_ID), 0, 0, 0],
    );
    assert_eq!(out.x, ret1(SMCCC_RET_NOT_SUPPORTED));
}

#[test]
fn pv_time_with_an_ipa_answers_features_and_asks_to_init_the_structure() {
    let mut fw = vm(&host(), 1);
    assert_eq!(
        fw.set_pv_time_ipa(0, 0x4000_0001),
        Err(crate::abi::Errno::EINVAL)
    );
    fw.set_pv_time_ipa(0, 0x4000_0040).unwrap();
    assert_eq!(
        fw.set_pv_time_ipa(0, 0x4000_0080),
        Err(crate::abi::Errno::EEXIST)
    );
    let mut s = fixed();
    let f = call(
        &mut fw,
        &mut s,
        Conduit::Hvc,
        [
            u64::from(ARM_SMCCC_HV_PV_TIME_FEATURES),
            u64::from(ARM_SMCCC_HV_PV_TIME_ST),
            0,
            0,
        ],
    );
    assert_eq!(f.x, [0, 0, 0, 0]);
    let st = call(
        &mut fw,
        &mut s,
        Conduit::Hvc,
        [u64::from(ARM_SMCCC_HV_PV_TIME_ST), 0, 0, 0],
    );
    assert_eq!(st.x[0], 0x4000_0040);
    assert_eq!(st.action, Action::InitStolenTime { ipa: 0x4000_0040 });
}

#[test]
fn smc_before_6_4_returns_minus_one_and_keeps_x1_to_x3() {
    let mut p = host();
    p.parts_mut().kernel = "6.1.0-37-arm64".into();
    let mut fw = vm(&p, 1);
    let out = call(
        &mut fw,
        &mut fixed(),
        Conduit::Smc,
        [u64::from(PSCI_0_2_FN_PSCI_VERSION), 1, 2, 3],
    );
    assert_eq!(out.x, [u64::MAX, 1, 2, 3]);
    let out = call(
        &mut fw,
        &mut fixed(),
        Conduit::Hvc,
        [u64::from(PSCI_0_2_FN_PSCI_VERSION), 1, 2, 3],
    );
    assert_eq!(out.x, [0x1_0001, 0, 0, 0]);
}

#[test]
fn smc_with_a_non_zero_immediate_is_not_an_smccc_call() {
    let mut fw = vm(&host(), 1);
    let mut c = Call::new(Conduit::Smc, [u64::from(PSCI_0_2_FN_PSCI_VERSION), 1, 2, 3]);
    c.imm = 1;
    let out = fw.handle_call(0, &c, &mut fixed()).unwrap();
    assert_eq!(out.x, [u64::MAX, 1, 2, 3]);
}

#[test]
fn unknown_firmware_register_before_5_2_is_einval() {
    let mut p = host();
    p.parts_mut().kernel = "5.1.0".into();
    let fw = vm(&p, 1);
    assert_eq!(
        fw.get_one_reg(0, 0x6030_0000_0014_0004),
        Err(crate::abi::Errno::EINVAL)
    );
}

#[test]
fn register_access_on_an_uninitialised_vcpu_is_enoexec() {
    let mut fw = Firmware::new(&host());
    fw.add_vcpu().unwrap();
    assert_eq!(
        fw.get_one_reg(0, FwReg::PsciVersion.id()),
        Err(crate::abi::Errno::ENOEXEC)
    );
    assert_eq!(fw.reg_list(0), Err(crate::abi::Errno::ENOEXEC));
    assert_eq!(fw.vcpu_run(0), Err(VcpuError::NotInitialised(0)));
}

#[test]
fn handle_call_on_a_stopped_vcpu_is_a_vmm_error() {
    let mut fw = vm(&host(), 1);
    fw.set_mp_state(0, KVM_MP_STATE_STOPPED).unwrap();
    let r = fw.handle_call(0, &Call::new(Conduit::Hvc, [0, 0, 0, 0]), &mut fixed());
    assert_eq!(r, Err(VcpuError::NotRunnable(0)));
    assert_eq!(
        fw.handle_call(3, &Call::new(Conduit::Hvc, [0; 4]), &mut fixed()),
        Err(VcpuError::NoSuchVcpu(3))
    );
}

#[test]
fn kvm_features_reports_vendor_hyp_bmap_2_in_x2() {
    let mut fw = vm(&builtin_named("linux-7.2.13-max").unwrap(), 1);
    fw.set_one_reg(0, FwReg::VendorHypBmap2.id(), 0x3).unwrap();
    let out = call(
        &mut fw,
        &mut fixed(),
        Conduit::Hvc,
        [
            u64::from(ARM_SMCCC_VENDOR_HYP_KVM_FEATURES_FUNC_ID),
            0,
            0,
            0,
        ],
    );
    assert_eq!(out.x, [0x3, 0, 0x3, 0]);
}

#[test]
fn discover_impl_answers_only_with_implementations_and_the_bitmap_bits() {
    use crate::firmware::Implementation;
    let ver = u64::from(ARM_SMCCC_VENDOR_HYP_KVM_DISCOVER_IMPL_VER_FUNC_ID);
    let cpus = u64::from(ARM_SMCCC_VENDOR_HYP_KVM_DISCOVER_IMPL_CPUS_FUNC_ID);
    let not_supported = ret1(SMCCC_RET_NOT_SUPPORTED);
    let mut fw = vm(&builtin_named("linux-7.2.13-max").unwrap(), 1);
    let mut s = fixed();
    // KVM's own answer, bits set or not: not served.
    fw.set_one_reg(0, FwReg::VendorHypBmap2.id(), 0x3).unwrap();
    assert_eq!(
        call(&mut fw, &mut s, Conduit::Hvc, [ver, 0, 0, 0]).x,
        not_supported
    );
    let pool = [
        Implementation {
            midr: 0x410f_d083,
            revidr: 0,
            aidr: 0,
        },
        Implementation {
            midr: 0x411f_d070,
            revidr: 0x1,
            aidr: 0x2,
        },
    ];
    fw.set_implementations(&pool).unwrap();
    assert_eq!(
        call(&mut fw, &mut s, Conduit::Hvc, [ver, 0, 0, 0]).x,
        [0, 0x1_0000, 2, 0]
    );
    assert_eq!(
        call(&mut fw, &mut s, Conduit::Hvc, [cpus, 1, 0, 0]).x,
        [0, 0x411f_d070, 0x1, 0x2]
    );
    assert_eq!(
        call(&mut fw, &mut s, Conduit::Hvc, [cpus, 2, 0, 0]).x,
        ret1(SMCCC_RET_INVALID_PARAMETER)
    );
    assert_eq!(
        call(&mut fw, &mut s, Conduit::Hvc, [cpus, u64::MAX, 0, 0]).x,
        ret1(SMCCC_RET_INVALID_PARAMETER)
    );
    // Each call behind its own bit: VER is bit 0, CPUS bit 1.
    fw.set_one_reg(0, FwReg::VendorHypBmap2.id(), 0x2).unwrap();
    assert_eq!(
        call(&mut fw, &mut s, Conduit::Hvc, [ver, 0, 0, 0]).x,
        not_supported
    );
    assert_eq!(
        call(&mut fw, &mut s, Conduit::Hvc, [cpus, 0, 0, 0]).x,
        [0, 0x410f_d083, 0, 0]
    );
    fw.set_one_reg(0, FwReg::VendorHypBmap2.id(), 0x1).unwrap();
    assert_eq!(
        call(&mut fw, &mut s, Conduit::Hvc, [cpus, 0, 0, 0]).x,
        not_supported
    );
    // Only before the VM runs, and within bounds.
    assert_eq!(
        fw.set_implementations(&[pool[0]; crate::firmware::MAX_IMPLEMENTATIONS + 1]),
        Err(Errno::EINVAL)
    );
    fw.vcpu_run(0).unwrap();
    assert_eq!(fw.set_implementations(&pool), Err(Errno::EBUSY));
    assert_eq!(fw.implementations(), &pool);
}

#[test]
fn cpu_on_races_give_one_success() {
    let mut fw = Firmware::new(&host());
    for i in 0..4 {
        fw.add_vcpu().unwrap();
        fw.init_vcpu(
            i,
            VcpuFeatures {
                psci_0_2: true,
                power_off: i == 3,
            },
        )
        .unwrap();
    }
    let on = Call::new(
        Conduit::Hvc,
        [u64::from(PSCI_0_2_FN64_CPU_ON), 3, 0x1000, 0],
    );
    let answers: Vec<u64> = (0..3)
        .map(|v| fw.handle_call(v, &on, &mut fixed()).unwrap().x[0])
        .collect();
    assert_eq!(
        answers,
        [0, ret(PSCI_RET_ALREADY_ON), ret(PSCI_RET_ALREADY_ON)]
    );
}

#[test]
fn every_guest_register_content_gets_an_answer() {
    // A sweep over function ids around every service: the engine never fails and x0 is one
    // of the values KVM can give for that call family.
    let mut fw = vm(&builtin_named("linux-7.2.13-max").unwrap(), 2);
    let mut s = Fixed {
        words: vec![7; 10_000],
        ptp: None,
        counters: Vec::new(),
    };
    let bases = [
        0x8000_0000u32,
        0x8400_0000,
        0xc400_0000,
        0x8600_0000,
        0xc500_0000,
        0x95c1_ba5e,
        0x8200_0000,
    ];
    let table = Function::ALL.iter().map(|f| (f.raw(), 1));
    for (base, count) in bases.into_iter().map(|b| (b, 0x60u32)).chain(table) {
        for n in 0..count {
            for x1 in [0u64, 1, u64::MAX, 0x8000_0000] {
                for conduit in [Conduit::Hvc, Conduit::Smc] {
                    let f = base.wrapping_add(n);
                    if fw.mp_state(0).unwrap() != MpState::Runnable {
                        fw.set_mp_state(0, KVM_MP_STATE_RUNNABLE).unwrap();
                    }
                    let out =
                        fw.handle_call(0, &Call::new(conduit, [u64::from(f), x1, 0, 0]), &mut s);
                    assert!(out.is_ok(), "{f:#x}");
                    if fw.mp_state(1).unwrap() != MpState::Runnable {
                        fw.set_mp_state(1, KVM_MP_STATE_RUNNABLE).unwrap();
                    }
                }
            }
        }
    }
}
