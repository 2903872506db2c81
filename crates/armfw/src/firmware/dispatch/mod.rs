//! Guest call dispatch, one module per service as in Linux `arch/arm64/kvm/`: the HVC fast
//! path (`hyp/hyp-entry.S`), SMC entry (`handle_exit.c`), the SMCCC filter and bitmap gating
//! (`hypercalls.c`) here; the services in [`arch`] (`hypercalls.c`), [`psci`] (`psci.c`),
//! [`trng`] (`trng.c`), [`pvtime`] (`pvtime.c`) and [`vendor`] (`hypercalls.c`, `ptp_kvm`).
//!
//! Which service answers a function, and what gates it, is read from the function table
//! ([`crate::abi::function`]).

mod arch;
mod psci;
mod pvtime;
mod trng;
mod vendor;

use super::{
    Action, Call, CallOutcome, Caller, Conduit, FilterAction, Firmware, Hypercall,
    KVM_HYPERCALL_EXIT_SMC, PowerStates, Services, VcpuError, Vm,
};
use crate::abi::function::{Gate, Service};
use crate::abi::smccc::{
    ARM_SMCCC_ARCH_WORKAROUND_1, ARM_SMCCC_ARCH_WORKAROUND_2, ARM_SMCCC_ARCH_WORKAROUND_3,
    SMCCC_RET_NOT_SUPPORTED, ret,
};
use crate::abi::{Function, FunctionId, FwReg};

/// x0 = value, x1..x3 = 0: `smccc_set_retval(vcpu, val, 0, 0, 0)`.
const fn ret1(v: i64) -> [u64; 4] {
    [ret(v), 0, 0, 0]
}

/// Write `x` and resume the caller.
fn resume(x: [u64; 4]) -> CallOutcome {
    CallOutcome {
        x,
        action: Action::Resume,
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
    ///
    /// Not inlined: as a call of its own it builds the outcome in its caller's return slot,
    /// where inlined its many arms build it on the stack and copy it there (17 of about 200
    /// instructions of a PSCI_VERSION call).
    #[inline(never)]
    pub(super) fn handle_call<P: PowerStates + ?Sized>(
        &self,
        caller: Caller,
        call: &Call,
        services: &mut dyn Services,
        power: &mut P,
    ) -> CallOutcome {
        let x = &call.x;
        let id = FunctionId::from_x0(x[0]);
        match call.conduit {
            Conduit::Hvc => {
                // hyp-entry.S: HVC with w0 = ARCH_WORKAROUND_1/2/3 returns at EL2 with x0 = 0;
                // x1 is used as scratch and left 0; x2, x3 are untouched. KVM compares the raw
                // w0 before anything else, so this stays a raw-value match.
                if matches!(
                    id.0,
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
        self.smccc_call(caller, call, id, services, power)
    }

    /// `kvm_smccc_call_handler()`: filter, gate, service.
    fn smccc_call<P: PowerStates + ?Sized>(
        &self,
        caller: Caller,
        call: &Call,
        id: FunctionId,
        services: &mut dyn Services,
        power: &mut P,
    ) -> CallOutcome {
        let x = &call.x;
        // A VM without a filter (the usual case) skips the range search.
        let action = if self.filter.is_configured() {
            self.filter.action(id.0)
        } else {
            FilterAction::Handle
        };
        match action {
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
                    action: Action::Forward(Hypercall { nr: id.0, flags }),
                };
            }
        }
        // One look-up in the function table serves the gate and the routing.
        let known = id.known();
        let gate = match known {
            // Served only when the VMM gave the implementations (userspace's calls).
            Some(Function::KvmDiscoverImplVer) if !self.implementations.is_empty() => {
                Gate::Bitmap {
                    reg: FwReg::VendorHypBmap2,
                    bit: 0,
                }
            }
            Some(Function::KvmDiscoverImplCpus) if !self.implementations.is_empty() => {
                Gate::Bitmap {
                    reg: FwReg::VendorHypBmap2,
                    bit: 1,
                }
            }
            Some(f) => f.info().gate,
            None => id.gate(),
        };
        if !self.gate_allows(gate) {
            return resume(ret1(SMCCC_RET_NOT_SUPPORTED));
        }
        match known.map(|f| (f, f.service())) {
            Some((f, Service::Arch)) => resume(self.arch_call(f, x)),
            Some((f, Service::Trng)) => resume(trng::call(f, x, services)),
            Some((f, Service::PvTime)) => pvtime::call(f, x, caller),
            Some((f, Service::VendorHyp)) => resume(self.vendor_call(f, x, services)),
            // PSCI, and the unknown ids the gate let through (the rest of the PSCI range and
            // KVM's PSCI 0.1 ids).
            Some((_, Service::Psci)) | None => self.psci_call(caller, call, known, power),
        }
    }

    /// Whether `gate` lets a call through (`kvm_smccc_test_fw_bmap()`, then
    /// `kvm_smccc_default_allowed()`).
    fn gate_allows(&self, gate: Gate) -> bool {
        match gate {
            Gate::Default => true,
            Gate::Bitmap { reg, bit } => self.bitmap(reg) & (1 << bit) != 0,
            Gate::Never => false,
        }
    }
}

#[cfg(test)]
pub(super) mod tests;
