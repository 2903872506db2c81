//! PSCI (Arm DEN0022; Linux `psci.c`): KVM's own 0.1, and 0.2 and 1.x read from the function
//! table (the version that introduced each function, its SMC32 narrowing, PSCI_FEATURES).

use super::{resume, ret1};
use crate::abi::function::{Advertised, Service};
use crate::abi::psci::{
    KVM_PSCI_FN_CPU_OFF, KVM_PSCI_FN_CPU_ON, PSCI_0_2_AFFINITY_LEVEL_OFF,
    PSCI_0_2_AFFINITY_LEVEL_ON, PSCI_0_2_TOS_MP, PSCI_1_1_RESET_TYPE_SYSTEM_WARM_RESET,
    PSCI_1_1_RESET_TYPE_VENDOR_START, PSCI_1_3_OFF_TYPE_HIBERNATE_OFF, PSCI_RET_ALREADY_ON,
    PSCI_RET_INTERNAL_FAILURE, PSCI_RET_INVALID_PARAMS, PSCI_RET_NOT_SUPPORTED, PSCI_RET_SUCCESS,
};
use crate::abi::reg_u32;
use crate::abi::{Function, FunctionId, Mpidr, PsciVersion};
use crate::firmware::{
    Action, Call, CallOutcome, Caller, KVM_SYSTEM_EVENT_RESET_FLAG_PSCI_RESET2,
    KVM_SYSTEM_EVENT_SHUTDOWN_FLAG_PSCI_OFF2, PowerStates, SystemEvent, SystemEventType, TurnOn,
    VcpuStart, Vm,
};

impl Vm {
    /// `kvm_psci_call()`: `known` is the caller's function if the table has it (PSCI or
    /// not: the gate lets unknown ids of the PSCI range and KVM's 0.1 ids through).
    pub(super) fn psci_call<P: PowerStates + ?Sized>(
        &self,
        caller: Caller,
        call: &Call,
        known: Option<Function>,
        power: &mut P,
    ) -> CallOutcome {
        let version = self.psci_version_for(caller.features);
        if version == PsciVersion::V0_1 {
            let x = [call.x[0], call.x[1], call.x[2], call.x[3]];
            return psci_0_1(caller.index, version, &x, FunctionId::from_x0(x[0]), power);
        }
        // KVM picks the handler by version: 0.2's calls for 0.2, 1.x's by minor otherwise.
        let level = if version == PsciVersion::V0_2 {
            PsciVersion::V0_2
        } else {
            PsciVersion::new(1, version.minor())
        };
        let Some(f) = known.filter(|f| f.service() == Service::Psci) else {
            return resume(ret1(PSCI_RET_NOT_SUPPORTED));
        };
        let info = f.info();
        if info.since.is_some_and(|since| level < since) {
            return resume(ret1(PSCI_RET_NOT_SUPPORTED));
        }
        // x0..x3: the only registers PSCI reads.
        let mut x = [call.x[0], call.x[1], call.x[2], call.x[3]];
        if info.narrow {
            // kvm_psci_narrow_to_32bit(): the upper halves of x1..x3 are cleared in place.
            for r in &mut x[1..4] {
                *r &= 0xffff_ffff;
            }
        }
        match f {
            Function::PsciVersion => resume(ret1(version.0.into())),
            // KVM reads the queried id as a u32.
            Function::PsciFeatures => {
                resume(ret1(self.psci_features(level, FunctionId(reg_u32(x[1])))))
            }
            Function::CpuSuspend32 | Function::CpuSuspend64 => CallOutcome {
                x: ret1(PSCI_RET_SUCCESS),
                action: Action::WaitForInterrupt,
            },
            Function::CpuOff => cpu_off(caller.index, power),
            Function::CpuOn32 | Function::CpuOn64 => cpu_on(version, &x, power),
            Function::AffinityInfo32 | Function::AffinityInfo64 => {
                resume(ret1(affinity_info(x[1], x[2], power)))
            }
            Function::MigrateInfoType => resume(ret1(PSCI_0_2_TOS_MP)),
            Function::SystemOff => system_event(SystemEventType::Shutdown, 0, power),
            Function::SystemReset => system_event(SystemEventType::Reset, 0, power),
            Function::SystemSuspend32 | Function::SystemSuspend64 => self.system_suspend(&x),
            Function::SystemReset2_32 | Function::SystemReset2_64 => system_reset2(&x, power),
            Function::SystemOff2_32 | Function::SystemOff2_64 => self.system_off2(&x, power),
            _ => resume(ret1(PSCI_RET_NOT_SUPPORTED)),
        }
    }

    /// PSCI_FEATURES under 1.x, from the table.
    fn psci_features(&self, level: PsciVersion, queried: FunctionId) -> i64 {
        let Some(info) = queried.known().map(Function::info) else {
            return PSCI_RET_NOT_SUPPORTED;
        };
        if info.since.is_some_and(|since| level < since) {
            return PSCI_RET_NOT_SUPPORTED;
        }
        match info.advertised {
            Advertised::No => PSCI_RET_NOT_SUPPORTED,
            Advertised::Yes => PSCI_RET_SUCCESS,
            Advertised::IfSystemSuspend if self.system_suspend => PSCI_RET_SUCCESS,
            Advertised::IfSystemSuspend => PSCI_RET_NOT_SUPPORTED,
            Advertised::OffTypes => PSCI_1_3_OFF_TYPE_HIBERNATE_OFF.into(),
        }
    }

    /// SYSTEM_SUSPEND: an exit to userspace where the VMM enabled it.
    fn system_suspend(&self, x: &[u64; 4]) -> CallOutcome {
        if !self.system_suspend {
            return resume(ret1(PSCI_RET_NOT_SUPPORTED));
        }
        // The registers stay as they are: userspace reads the entry point and context id
        // from x1/x2.
        CallOutcome {
            x: *x,
            action: Action::SystemEvent(SystemEvent {
                kind: SystemEventType::Suspend,
                data: Vec::new(),
            }),
        }
    }

    /// SYSTEM_OFF2 (1.3): hibernate-off only (type 0 too where the release says so), no
    /// cookie.
    fn system_off2<P: PowerStates + ?Sized>(&self, x: &[u64; 4], power: &mut P) -> CallOutcome {
        let off_type = reg_u32(x[1]);
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
}

/// `kvm_psci_0_1_call()`: KVM's own ids (raw values: they do not follow SMCCC); only
/// CPU_OFF and CPU_ON work, and x1..x3 are used as they are.
fn psci_0_1<P: PowerStates + ?Sized>(
    vcpu: usize,
    version: PsciVersion,
    x: &[u64; 4],
    id: FunctionId,
    power: &mut P,
) -> CallOutcome {
    match id.0 {
        KVM_PSCI_FN_CPU_OFF => cpu_off(vcpu, power),
        KVM_PSCI_FN_CPU_ON => cpu_on(version, x, power),
        _ => resume(ret1(PSCI_RET_NOT_SUPPORTED)),
    }
}

fn cpu_off<P: PowerStates + ?Sized>(vcpu: usize, power: &mut P) -> CallOutcome {
    power.stop(vcpu);
    CallOutcome {
        x: ret1(PSCI_RET_SUCCESS),
        action: Action::CpuOff,
    }
}

/// `kvm_psci_vcpu_on()`: x1 target, x2 entry, x3 context id (already narrowed for SMC32).
/// Concurrent CPU_ONs of one STOPPED target give one SUCCESS: the check and the change are
/// one step of [`PowerStates::turn_on`] (KVM holds the target's `mp_state_lock`).
fn cpu_on<P: PowerStates + ?Sized>(
    version: PsciVersion,
    x: &[u64; 4],
    power: &mut P,
) -> CallOutcome {
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
fn affinity_info<P: PowerStates + ?Sized>(target: u64, level: u64, power: &P) -> i64 {
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

/// SYSTEM_RESET2 (1.1): a warm reset or a vendor type stops every vCPU and exits.
fn system_reset2<P: PowerStates + ?Sized>(x: &[u64; 4], power: &mut P) -> CallOutcome {
    let reset_type = reg_u32(x[1]);
    if reset_type == PSCI_1_1_RESET_TYPE_SYSTEM_WARM_RESET
        || reset_type >= PSCI_1_1_RESET_TYPE_VENDOR_START
    {
        power.stop_all();
        // Only x0 is overwritten; the type and cookie stay for userspace.
        return CallOutcome {
            x: [
                crate::abi::smccc::ret(PSCI_RET_INTERNAL_FAILURE),
                x[1],
                x[2],
                x[3],
            ],
            action: Action::SystemEvent(SystemEvent {
                kind: SystemEventType::Reset,
                data: vec![KVM_SYSTEM_EVENT_RESET_FLAG_PSCI_RESET2],
            }),
        };
    }
    resume(ret1(PSCI_RET_INVALID_PARAMS))
}

/// SYSTEM_OFF, SYSTEM_RESET, SYSTEM_OFF2: every vCPU STOPPED, exit with one data word,
/// x0 preloaded with INTERNAL_FAILURE and x1..x3 zeroed.
fn system_event<P: PowerStates + ?Sized>(
    kind: SystemEventType,
    flags: u64,
    power: &mut P,
) -> CallOutcome {
    power.stop_all();
    CallOutcome {
        x: ret1(PSCI_RET_INTERNAL_FAILURE),
        action: Action::SystemEvent(SystemEvent {
            kind,
            data: vec![flags],
        }),
    }
}
