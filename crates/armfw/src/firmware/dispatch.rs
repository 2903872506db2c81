//! Guest call dispatch: the HVC fast path, SMC entry, the SMCCC filter, bitmap gating, and
//! every service (Linux `arch/arm64/kvm/hyp/hyp-entry.S`, `handle_exit.c`, `hypercalls.c`,
//! `psci.c`, `trng.c`, `pvtime.c`).

use super::{
    Action, Call, CallOutcome, Caller, Conduit, FilterAction, Firmware, Hypercall,
    KVM_HYPERCALL_EXIT_SMC, KVM_SYSTEM_EVENT_RESET_FLAG_PSCI_RESET2,
    KVM_SYSTEM_EVENT_SHUTDOWN_FLAG_PSCI_OFF2, PowerStates, PtpCounter, Services, SystemEvent,
    SystemEventType, TurnOn, VcpuError, VcpuStart, Vm,
};
use crate::abi::psci::*;
use crate::abi::reg::{
    KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_1_AVAIL, KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_1_NOT_REQUIRED,
    KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_NOT_REQUIRED,
};
use crate::abi::smccc::*;
use crate::abi::{FunctionId, FwReg, Mpidr, PsciVersion};

/// x0 = value, x1..x3 = 0: `smccc_set_retval(vcpu, val, 0, 0, 0)`.
const fn ret1(v: i64) -> [u64; 4] {
    [v as u64, 0, 0, 0]
}

fn resume(x: [u64; 4]) -> CallOutcome {
    CallOutcome {
        x,
        action: Action::Resume,
    }
}

fn narrow(x: &mut [u64; 18]) {
    // kvm_psci_narrow_to_32bit(): the upper halves of x1..x3 are cleared in place.
    for r in &mut x[1..4] {
        *r &= 0xffff_ffff;
    }
}

impl Firmware {
    /// Answer one guest call from `vcpu` as KVM would.
    ///
    /// `vcpu` must be initialised and RUNNABLE (a vCPU in any other state is not running, so
    /// it cannot trap); otherwise a [`VcpuError`]. Every register content is valid input.
    pub fn handle_call(
        &mut self,
        vcpu: usize,
        call: &Call,
        services: &mut dyn Services,
    ) -> Result<CallOutcome, VcpuError> {
        let caller = self
            .vcpus
            .get(vcpu)
            .ok_or(VcpuError::NoSuchVcpu(vcpu))?
            .caller(vcpu)?;
        Ok(self.vm.handle_call(caller, call, services, &mut self.vcpus))
    }
}

impl Vm {
    /// A guest call from `caller`, which has passed [`super::Vcpu::caller`]'s checks. Reads
    /// the VM-wide state only; power-state changes go through `power`.
    pub(super) fn handle_call(
        &self,
        caller: Caller,
        call: &Call,
        services: &mut dyn Services,
        power: &mut dyn PowerStates,
    ) -> CallOutcome {
        let x = &call.x;
        let func = FunctionId::from_x0(x[0]).0;
        match call.conduit {
            Conduit::Hvc => {
                // hyp-entry.S: HVC with w0 = ARCH_WORKAROUND_1/2/3 returns at EL2 with x0 = 0;
                // x1 is used as scratch and left 0; x2, x3 are untouched.
                if matches!(
                    func,
                    ARM_SMCCC_ARCH_WORKAROUND_1
                        | ARM_SMCCC_ARCH_WORKAROUND_2
                        | ARM_SMCCC_ARCH_WORKAROUND_3
                ) {
                    return resume([0, 0, x[2], x[3]]);
                }
            }
            Conduit::Smc => {
                // handle_smc(): before 6.4 every SMC gets x0 = ~0; since, a non-zero immediate
                // does. x1..x3 are untouched.
                if !self.rules.smc_reaches_handler || call.imm != 0 {
                    return resume([u64::MAX, x[1], x[2], x[3]]);
                }
            }
        }
        self.smccc_call(caller, call, func, services, power)
    }

    /// `kvm_smccc_call_handler()`: filter, gate, service.
    fn smccc_call(
        &self,
        caller: Caller,
        call: &Call,
        func: u32,
        services: &mut dyn Services,
        power: &mut dyn PowerStates,
    ) -> CallOutcome {
        let x = &call.x;
        match self.filter.action(func) {
            FilterAction::Handle => {}
            FilterAction::Deny => return resume(ret1(SMCCC_RET_NOT_SUPPORTED)),
            FilterAction::Forward => {
                let flags = if call.conduit == Conduit::Smc {
                    KVM_HYPERCALL_EXIT_SMC
                } else {
                    0
                };
                return CallOutcome {
                    x: [x[0], x[1], x[2], x[3]],
                    action: Action::Forward(Hypercall { nr: func, flags }),
                };
            }
        }
        if !(self.bitmap_allows(func) || default_allowed(func)) {
            return resume(ret1(SMCCC_RET_NOT_SUPPORTED));
        }
        let arg1_u32 = x[1] as u32;
        match func {
            ARM_SMCCC_VERSION_FUNC_ID => resume(ret1(ARM_SMCCC_VERSION_1_1.into())),
            ARM_SMCCC_ARCH_FEATURES_FUNC_ID => resume(ret1(self.arch_features(arg1_u32))),
            ARM_SMCCC_HV_PV_TIME_FEATURES => {
                let ok = matches!(
                    arg1_u32,
                    ARM_SMCCC_HV_PV_TIME_FEATURES | ARM_SMCCC_HV_PV_TIME_ST
                ) && caller.steal_ipa.is_some();
                resume(ret1(if ok {
                    SMCCC_RET_SUCCESS
                } else {
                    SMCCC_RET_NOT_SUPPORTED
                }))
            }
            ARM_SMCCC_HV_PV_TIME_ST => match caller.steal_ipa {
                Some(ipa) => CallOutcome {
                    x: [ipa, 0, 0, 0],
                    action: Action::InitStolenTime { ipa },
                },
                None => resume(ret1(SMCCC_RET_NOT_SUPPORTED)),
            },
            ARM_SMCCC_VENDOR_HYP_CALL_UID_FUNC_ID => {
                resume(ARM_SMCCC_VENDOR_HYP_UID_KVM_WORDS.map(u64::from))
            }
            ARM_SMCCC_VENDOR_HYP_KVM_FEATURES_FUNC_ID => resume([
                self.bitmap(FwReg::VendorHypBmap),
                0,
                self.bitmap(FwReg::VendorHypBmap2),
                0,
            ]),
            ARM_SMCCC_VENDOR_HYP_KVM_PTP_FUNC_ID => {
                let counter = match arg1_u32 {
                    KVM_PTP_VIRT_COUNTER => Some(PtpCounter::Virtual),
                    KVM_PTP_PHYS_COUNTER => Some(PtpCounter::Physical),
                    _ => None,
                };
                match counter.and_then(|c| services.ptp_time(c)) {
                    Some(t) => resume([
                        t.realtime_ns >> 32,
                        t.realtime_ns & 0xffff_ffff,
                        t.counter >> 32,
                        t.counter & 0xffff_ffff,
                    ]),
                    None => resume(ret1(SMCCC_RET_NOT_SUPPORTED)),
                }
            }
            ARM_SMCCC_TRNG_VERSION
            | ARM_SMCCC_TRNG_FEATURES
            | ARM_SMCCC_TRNG_GET_UUID
            | ARM_SMCCC_TRNG_RND32
            | ARM_SMCCC_TRNG_RND64 => resume(trng(func, x, services)),
            _ => self.psci_call(caller, call, func, power),
        }
    }

    /// `kvm_smccc_test_fw_bmap()`.
    fn bitmap_allows(&self, func: u32) -> bool {
        let bit = |reg: FwReg, bit: u32| self.bitmap(reg) & (1 << bit) != 0;
        match func {
            ARM_SMCCC_TRNG_VERSION
            | ARM_SMCCC_TRNG_FEATURES
            | ARM_SMCCC_TRNG_GET_UUID
            | ARM_SMCCC_TRNG_RND32
            | ARM_SMCCC_TRNG_RND64 => bit(FwReg::StdBmap, 0),
            ARM_SMCCC_HV_PV_TIME_FEATURES | ARM_SMCCC_HV_PV_TIME_ST => bit(FwReg::StdHypBmap, 0),
            ARM_SMCCC_VENDOR_HYP_KVM_FEATURES_FUNC_ID | ARM_SMCCC_VENDOR_HYP_CALL_UID_FUNC_ID => {
                bit(FwReg::VendorHypBmap, 0)
            }
            ARM_SMCCC_VENDOR_HYP_KVM_PTP_FUNC_ID => bit(FwReg::VendorHypBmap, 1),
            _ => false,
        }
    }

    /// SMCCC_ARCH_FEATURES: the answer for `feature`, from the host levels.
    fn arch_features(&self, feature: u32) -> i64 {
        let wa1_style = |level: u64| match level {
            KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_1_AVAIL => SMCCC_RET_SUCCESS,
            KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_1_NOT_REQUIRED => {
                SMCCC_ARCH_WORKAROUND_RET_UNAFFECTED
            }
            _ => SMCCC_RET_NOT_SUPPORTED,
        };
        match feature {
            ARM_SMCCC_ARCH_WORKAROUND_1 => wa1_style(self.host_level(FwReg::SmcccArchWorkaround1)),
            ARM_SMCCC_ARCH_WORKAROUND_3 => wa1_style(self.host_level(FwReg::SmcccArchWorkaround3)),
            ARM_SMCCC_ARCH_WORKAROUND_2 => {
                if self.host_level(FwReg::SmcccArchWorkaround2)
                    == KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_NOT_REQUIRED
                {
                    SMCCC_RET_NOT_REQUIRED
                } else {
                    SMCCC_RET_NOT_SUPPORTED
                }
            }
            ARM_SMCCC_HV_PV_TIME_FEATURES if self.bitmap(FwReg::StdHypBmap) & 1 != 0 => {
                SMCCC_RET_SUCCESS
            }
            _ => SMCCC_RET_NOT_SUPPORTED,
        }
    }

    /// `kvm_psci_call()`.
    fn psci_call(
        &self,
        caller: Caller,
        call: &Call,
        func: u32,
        power: &mut dyn PowerStates,
    ) -> CallOutcome {
        let vcpu = caller.index;
        let version = self.psci_version_for(caller.features);
        let mut x = call.x;
        if version == PsciVersion::V0_1 {
            psci_0_1(vcpu, version, &x, func, power)
        } else if version == PsciVersion::V0_2 {
            psci_0_2(vcpu, version, &mut x, func, power)
        } else {
            self.psci_1_x(vcpu, version, &mut x, func, power)
        }
    }

    /// `kvm_psci_1_x_call()`.
    fn psci_1_x(
        &self,
        vcpu: usize,
        version: PsciVersion,
        x: &mut [u64; 18],
        func: u32,
        power: &mut dyn PowerStates,
    ) -> CallOutcome {
        let minor = version.minor();
        match func {
            PSCI_0_2_FN_PSCI_VERSION => resume(ret1(version.0.into())),
            PSCI_1_0_FN_PSCI_FEATURES => resume(ret1(self.psci_features(minor, x[1] as u32))),
            PSCI_1_0_FN_SYSTEM_SUSPEND | PSCI_1_0_FN64_SYSTEM_SUSPEND => {
                if func == PSCI_1_0_FN_SYSTEM_SUSPEND {
                    narrow(x);
                }
                if self.system_suspend {
                    // The registers stay as they are: userspace reads the entry point and
                    // context id from x1/x2.
                    return CallOutcome {
                        x: [x[0], x[1], x[2], x[3]],
                        action: Action::SystemEvent(SystemEvent {
                            kind: SystemEventType::Suspend,
                            data: Vec::new(),
                        }),
                    };
                }
                resume(ret1(PSCI_RET_NOT_SUPPORTED))
            }
            PSCI_1_1_FN_SYSTEM_RESET2 | PSCI_1_1_FN64_SYSTEM_RESET2 => {
                if func == PSCI_1_1_FN_SYSTEM_RESET2 {
                    narrow(x);
                }
                if minor < 1 {
                    return resume(ret1(PSCI_RET_NOT_SUPPORTED));
                }
                let reset_type = x[1] as u32;
                if reset_type == PSCI_1_1_RESET_TYPE_SYSTEM_WARM_RESET
                    || reset_type >= PSCI_1_1_RESET_TYPE_VENDOR_START
                {
                    power.stop_all();
                    // Only x0 is overwritten; the type and cookie stay for userspace.
                    return CallOutcome {
                        x: [PSCI_RET_INTERNAL_FAILURE as u64, x[1], x[2], x[3]],
                        action: Action::SystemEvent(SystemEvent {
                            kind: SystemEventType::Reset,
                            data: vec![KVM_SYSTEM_EVENT_RESET_FLAG_PSCI_RESET2],
                        }),
                    };
                }
                resume(ret1(PSCI_RET_INVALID_PARAMS))
            }
            PSCI_1_3_FN_SYSTEM_OFF2 | PSCI_1_3_FN64_SYSTEM_OFF2 => {
                if func == PSCI_1_3_FN_SYSTEM_OFF2 {
                    narrow(x);
                }
                if minor < 3 {
                    return resume(ret1(PSCI_RET_NOT_SUPPORTED));
                }
                let off_type = x[1] as u32;
                let type_ok = off_type == PSCI_1_3_OFF_TYPE_HIBERNATE_OFF
                    || (off_type == 0 && self.rules.off2_type_zero_is_hibernate);
                if !type_ok || x[2] != 0 {
                    return resume(ret1(PSCI_RET_INVALID_PARAMS));
                }
                system_event(
                    SystemEventType::Shutdown,
                    KVM_SYSTEM_EVENT_SHUTDOWN_FLAG_PSCI_OFF2,
                    power,
                )
            }
            _ => psci_0_2(vcpu, version, x, func, power),
        }
    }

    /// PSCI_FEATURES under 1.x.
    fn psci_features(&self, minor: u16, queried: u32) -> i64 {
        match queried {
            PSCI_0_2_FN_PSCI_VERSION
            | PSCI_0_2_FN_CPU_SUSPEND
            | PSCI_0_2_FN64_CPU_SUSPEND
            | PSCI_0_2_FN_CPU_OFF
            | PSCI_0_2_FN_CPU_ON
            | PSCI_0_2_FN64_CPU_ON
            | PSCI_0_2_FN_AFFINITY_INFO
            | PSCI_0_2_FN64_AFFINITY_INFO
            | PSCI_0_2_FN_MIGRATE_INFO_TYPE
            | PSCI_0_2_FN_SYSTEM_OFF
            | PSCI_0_2_FN_SYSTEM_RESET
            | PSCI_1_0_FN_PSCI_FEATURES
            | ARM_SMCCC_VERSION_FUNC_ID => PSCI_RET_SUCCESS,
            PSCI_1_0_FN_SYSTEM_SUSPEND | PSCI_1_0_FN64_SYSTEM_SUSPEND if self.system_suspend => {
                PSCI_RET_SUCCESS
            }
            PSCI_1_1_FN_SYSTEM_RESET2 | PSCI_1_1_FN64_SYSTEM_RESET2 if minor >= 1 => {
                PSCI_RET_SUCCESS
            }
            PSCI_1_3_FN_SYSTEM_OFF2 | PSCI_1_3_FN64_SYSTEM_OFF2 if minor >= 3 => {
                PSCI_1_3_OFF_TYPE_HIBERNATE_OFF.into()
            }
            _ => PSCI_RET_NOT_SUPPORTED,
        }
    }
}

/// `kvm_psci_0_1_call()`: KVM's own ids; only CPU_OFF and CPU_ON work.
fn psci_0_1(
    vcpu: usize,
    version: PsciVersion,
    x: &[u64; 18],
    func: u32,
    power: &mut dyn PowerStates,
) -> CallOutcome {
    match func {
        KVM_PSCI_FN_CPU_OFF => cpu_off(vcpu, power),
        KVM_PSCI_FN_CPU_ON => cpu_on(version, x, power),
        _ => resume(ret1(PSCI_RET_NOT_SUPPORTED)),
    }
}

/// `kvm_psci_0_2_call()`.
fn psci_0_2(
    vcpu: usize,
    version: PsciVersion,
    x: &mut [u64; 18],
    func: u32,
    power: &mut dyn PowerStates,
) -> CallOutcome {
    match func {
        PSCI_0_2_FN_PSCI_VERSION => resume(ret1(PsciVersion::V0_2.0.into())),
        PSCI_0_2_FN_CPU_SUSPEND | PSCI_0_2_FN64_CPU_SUSPEND => CallOutcome {
            x: ret1(PSCI_RET_SUCCESS),
            action: Action::WaitForInterrupt,
        },
        PSCI_0_2_FN_CPU_OFF => cpu_off(vcpu, power),
        PSCI_0_2_FN_CPU_ON | PSCI_0_2_FN64_CPU_ON => {
            if func == PSCI_0_2_FN_CPU_ON {
                narrow(x);
            }
            cpu_on(version, x, power)
        }
        PSCI_0_2_FN_AFFINITY_INFO | PSCI_0_2_FN64_AFFINITY_INFO => {
            if func == PSCI_0_2_FN_AFFINITY_INFO {
                narrow(x);
            }
            resume(ret1(affinity_info(x[1], x[2], power)))
        }
        PSCI_0_2_FN_MIGRATE_INFO_TYPE => resume(ret1(PSCI_0_2_TOS_MP)),
        PSCI_0_2_FN_SYSTEM_OFF => system_event(SystemEventType::Shutdown, 0, power),
        PSCI_0_2_FN_SYSTEM_RESET => system_event(SystemEventType::Reset, 0, power),
        _ => resume(ret1(PSCI_RET_NOT_SUPPORTED)),
    }
}

fn cpu_off(vcpu: usize, power: &mut dyn PowerStates) -> CallOutcome {
    power.stop(vcpu);
    CallOutcome {
        x: ret1(PSCI_RET_SUCCESS),
        action: Action::CpuOff,
    }
}

/// `kvm_psci_vcpu_on()`: x1 target, x2 entry, x3 context id (already narrowed for SMC32).
/// Concurrent CPU_ONs of one STOPPED target give one SUCCESS: the check and the change are
/// one step of [`PowerStates::turn_on`] (KVM holds the target's `mp_state_lock`).
fn cpu_on(version: PsciVersion, x: &[u64; 18], power: &mut dyn PowerStates) -> CallOutcome {
    let target = Mpidr(x[1]);
    if !target.is_valid_affinity() {
        return resume(ret1(PSCI_RET_INVALID_PARAMS));
    }
    match power.turn_on(target.affinity()) {
        TurnOn::NoSuchVcpu => resume(ret1(PSCI_RET_INVALID_PARAMS)),
        TurnOn::NotStopped => {
            let e = if version == PsciVersion::V0_1 {
                PSCI_RET_INVALID_PARAMS
            } else {
                PSCI_RET_ALREADY_ON
            };
            resume(ret1(e))
        }
        TurnOn::TurnedOn(t) => CallOutcome {
            x: ret1(PSCI_RET_SUCCESS),
            action: Action::StartVcpu(VcpuStart {
                vcpu: t,
                entry: x[2],
                context_id: x[3],
            }),
        },
    }
}

/// `kvm_psci_vcpu_affinity_info()`.
fn affinity_info(target: u64, level: u64, power: &dyn PowerStates) -> i64 {
    if !Mpidr(target).is_valid_affinity() {
        return PSCI_RET_INVALID_PARAMS;
    }
    let Some(mask) = Mpidr::affinity_mask(level) else {
        return PSCI_RET_INVALID_PARAMS;
    };
    match power.any_on(target & mask, mask) {
        None => PSCI_RET_INVALID_PARAMS,
        Some(true) => PSCI_0_2_AFFINITY_LEVEL_ON,
        Some(false) => PSCI_0_2_AFFINITY_LEVEL_OFF,
    }
}

/// SYSTEM_OFF, SYSTEM_RESET, SYSTEM_OFF2: every vCPU STOPPED, exit with one data word,
/// x0 preloaded with INTERNAL_FAILURE and x1..x3 zeroed.
fn system_event(kind: SystemEventType, flags: u64, power: &mut dyn PowerStates) -> CallOutcome {
    power.stop_all();
    CallOutcome {
        x: ret1(PSCI_RET_INTERNAL_FAILURE),
        action: Action::SystemEvent(SystemEvent {
            kind,
            data: vec![flags],
        }),
    }
}

/// `kvm_smccc_default_allowed()`: calls no bitmap gates.
fn default_allowed(func: u32) -> bool {
    let id = FunctionId(func);
    match func {
        ARM_SMCCC_VERSION_FUNC_ID | ARM_SMCCC_ARCH_FEATURES_FUNC_ID => true,
        // PSCI 0.2 and later: standard owner, function numbers 0..=0x1f, either convention.
        _ if id.owner_number() == 4 && id.number() <= 0x1f => true,
        KVM_PSCI_FN_CPU_SUSPEND..=KVM_PSCI_FN_MIGRATE => true,
        _ => false,
    }
}

/// `kvm_trng_call()`.
fn trng(func: u32, x: &[u64; 18], services: &mut dyn Services) -> [u64; 4] {
    match func {
        ARM_SMCCC_TRNG_VERSION => ret1(ARM_SMCCC_TRNG_VERSION_1_0.into()),
        ARM_SMCCC_TRNG_FEATURES => {
            // The queried id is compared as a full 64-bit value.
            let known = [
                ARM_SMCCC_TRNG_VERSION,
                ARM_SMCCC_TRNG_FEATURES,
                ARM_SMCCC_TRNG_GET_UUID,
                ARM_SMCCC_TRNG_RND32,
                ARM_SMCCC_TRNG_RND64,
            ]
            .iter()
            .any(|&f| u64::from(f) == x[1]);
            ret1(if known {
                TRNG_SUCCESS
            } else {
                SMCCC_RET_NOT_SUPPORTED
            })
        }
        ARM_SMCCC_TRNG_GET_UUID => ARM_SMCCC_TRNG_UUID_WORDS.map(u64::from),
        _ => {
            let wide = func == ARM_SMCCC_TRNG_RND64;
            let max_bits: u32 = if wide { 192 } else { 96 };
            let bits = x[1] as u32;
            if bits > max_bits {
                return ret1(TRNG_INVALID_PARAMETER);
            }
            // bits[0] holds bits 63:0, bits[1] 127:64, bits[2] 191:128; only as many words as
            // needed are drawn, and the bits above the request are cleared.
            let mut words = [0u64; 3];
            for (i, w) in words.iter_mut().enumerate() {
                let low = 64 * i as u32;
                if bits > low {
                    let r = services.random_u64();
                    let keep = bits - low;
                    *w = if keep >= 64 {
                        r
                    } else {
                        r & ((1u64 << keep) - 1)
                    };
                }
            }
            if wide {
                [TRNG_SUCCESS as u64, words[2], words[1], words[0]]
            } else {
                [
                    TRNG_SUCCESS as u64,
                    words[1] & 0xffff_ffff,
                    words[0] >> 32,
                    words[0] & 0xffff_ffff,
                ]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firmware::{MpState, VcpuFeatures};
    use crate::profile::{Profile, builtin_named};

    /// Services whose random words and time are known, to check where bits land.
    struct Fixed {
        words: Vec<u64>,
        ptp: Option<super::super::PtpTime>,
        counters: Vec<PtpCounter>,
    }

    impl Services for Fixed {
        fn random_u64(&mut self) -> u64 {
            self.words.remove(0)
        }
        fn ptp_time(&mut self, c: PtpCounter) -> Option<super::super::PtpTime> {
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
            ptp: Some(super::super::PtpTime {
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
        p.kernel = "6.1.0-37-arm64".into();
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
        p.kernel = "5.1.0".into();
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
        fw.set_mp_state(0, super::super::KVM_MP_STATE_STOPPED)
            .unwrap();
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
            [0, PSCI_RET_ALREADY_ON as u64, PSCI_RET_ALREADY_ON as u64]
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
        for base in bases {
            for n in 0..0x60u32 {
                for x1 in [0u64, 1, u64::MAX, 0x8000_0000] {
                    for conduit in [Conduit::Hvc, Conduit::Smc] {
                        let f = base.wrapping_add(n);
                        if fw.mp_state(0).unwrap() != MpState::Runnable {
                            fw.set_mp_state(0, super::super::KVM_MP_STATE_RUNNABLE)
                                .unwrap();
                        }
                        let out = fw.handle_call(
                            0,
                            &Call::new(conduit, [u64::from(f), x1, 0, 0]),
                            &mut s,
                        );
                        assert!(out.is_ok(), "{f:#x}");
                        if fw.mp_state(1).unwrap() != MpState::Runnable {
                            fw.set_mp_state(1, super::super::KVM_MP_STATE_RUNNABLE)
                                .unwrap();
                        }
                    }
                }
            }
        }
    }
}
