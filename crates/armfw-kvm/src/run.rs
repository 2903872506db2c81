// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Running a [`TestVm`]'s vCPUs: one call at a time, KVM_RUN under the watchdog, and what
//! each exit means ([`CallExit`]).

pub use armfw::firmware::Conduit;
use armfw::scenario::CallResult;
use kvm_ioctls::VcpuExit;

use crate::error::sys;
use crate::guest::{self, MmioExit};
use crate::regs;
use crate::vm::{get_u64, set_u64};
use crate::watchdog::Watchdog;
use crate::{Error, TestVm};

/// How a call ended.
///
/// The scenario contract's [`CallResult`] (which `From` gives), except that a forwarded call
/// keeps the registers the guest passed: a VMM that answers it needs them, the contract
/// compares only `nr` and `flags`.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum CallExit {
    /// The call returned to the guest; `x` is x0..x3 as the guest sees them.
    Returned {
        /// x0..x3 after the call.
        x: [u64; 4],
    },
    /// KVM exited with `KVM_EXIT_SYSTEM_EVENT`.
    SystemEvent {
        /// `system_event.type` (1 SHUTDOWN, 2 RESET, 3 CRASH, 4 WAKEUP, 5 SUSPEND; see
        /// [`crate::system_event_name`]).
        kind: u32,
        /// `system_event.data[..ndata]`.
        data: Vec<u64>,
        /// x0..x3 as they stand at the exit.
        x: [u64; 4],
    },
    /// KVM forwarded the call to userspace (`KVM_EXIT_HYPERCALL`, SMCCC filter action
    /// FWD_TO_USER). The PC is already past the HVC/SMC; [`TestVm::resume`] answers the
    /// call, and the next [`TestVm::call`] on the vCPU starts afresh.
    Hypercall {
        /// `hypercall.nr`: the function id.
        nr: u64,
        /// `hypercall.flags`: bit 0 `KVM_HYPERCALL_EXIT_SMC`, bit 1
        /// `KVM_HYPERCALL_EXIT_16BIT`.
        flags: u64,
        /// x0..x3 as the guest passed them.
        x: [u64; 4],
    },
    /// KVM_RUN did not return within the wait limit and was interrupted.
    Blocked {
        /// KVM_GET_MP_STATE afterwards (see [`crate::mp_state_name`]).
        mp_state: u32,
        /// x0..x3 as KVM left them.
        x: [u64; 4],
    },
}

impl From<CallExit> for CallResult {
    fn from(exit: CallExit) -> CallResult {
        match exit {
            CallExit::Returned { x } => CallResult::Returned { x },
            CallExit::SystemEvent { kind, data, x } => CallResult::SystemEvent { kind, data, x },
            CallExit::Hypercall { nr, flags, .. } => CallResult::Hypercall { nr, flags },
            CallExit::Blocked { mp_state, x } => CallResult::Blocked { mp_state, x },
        }
    }
}

impl TestVm {
    /// Makes vCPU `vcpu` execute `hvc #0` or `smc #0` with x0..x3 = `x` (x4..x17 = 0) and
    /// reports how that ended.
    pub fn call(&mut self, vcpu: usize, conduit: Conduit, x: [u64; 4]) -> Result<CallExit, Error> {
        let entry = match conduit {
            Conduit::Hvc => guest::HVC_ENTRY,
            Conduit::Smc => guest::SMC_ENTRY,
        };
        let fd = self.vcpu_fd(vcpu)?;
        for (i, &value) in x.iter().enumerate() {
            set_u64(fd, regs::x(i), value)?;
        }
        for i in 4..=17 {
            set_u64(fd, regs::x(i), 0)?;
        }
        set_u64(fd, regs::PSTATE, guest::PSTATE_EL1H_MASKED)?;
        set_u64(fd, regs::VBAR_EL1, guest::VECTORS)?;
        set_u64(fd, regs::PC, entry)?;
        self.run_call(vcpu)
    }

    /// Answers a call that KVM forwarded to userspace ([`CallExit::Hypercall`]): writes
    /// x0..x3 = `x` and runs the vCPU on from where it stopped (after the HVC/SMC).
    pub fn resume(&mut self, vcpu: usize, x: [u64; 4]) -> Result<CallExit, Error> {
        let fd = self.vcpu_fd(vcpu)?;
        for (i, &value) in x.iter().enumerate() {
            set_u64(fd, regs::x(i), value)?;
        }
        self.run_call(vcpu)
    }

    /// Runs vCPU `vcpu` on from where it stopped, its registers as they are (after a
    /// [`CallExit::Hypercall`] that userspace firmware answered in place).
    pub fn run_on(&mut self, vcpu: usize) -> Result<CallExit, Error> {
        self.vcpu_fd(vcpu)?;
        self.run_call(vcpu)
    }

    /// Runs vCPU `vcpu` from a `wfi` that leaves as a returned call once an interrupt is
    /// pending: how userspace firmware completes CPU_SUSPEND exactly as KVM does.
    pub fn run_on_after_wfi(&mut self, vcpu: usize) -> Result<CallExit, Error> {
        set_u64(self.vcpu_fd(vcpu)?, regs::PC, guest::WFI_ENTRY)?;
        self.run_call(vcpu)
    }

    fn run_call(&mut self, vcpu: usize) -> Result<CallExit, Error> {
        let Some(exit) = self.run_watched(vcpu)? else {
            let mp_state = self.mp_state(vcpu).map_err(sys("KVM_GET_MP_STATE"))?;
            return Ok(CallExit::Blocked {
                mp_state,
                x: self.read_x(vcpu)?,
            });
        };
        match exit {
            Exit::Mmio { addr, write: true } => {
                // Complete the exit whatever the outcome, then report the outcome.
                let result = self.mmio_outcome(vcpu, addr);
                self.complete_mmio(vcpu)?;
                result
            }
            Exit::Mmio { addr, write: false } => {
                self.complete_mmio(vcpu)?;
                Err(Error::UnexpectedMmio {
                    vcpu,
                    addr,
                    write: false,
                })
            }
            Exit::SystemEvent { kind, data } => Ok(CallExit::SystemEvent {
                kind,
                data,
                x: self.read_x(vcpu)?,
            }),
            Exit::Hypercall { nr, flags } => Ok(CallExit::Hypercall {
                nr,
                flags,
                x: self.read_x(vcpu)?,
            }),
            Exit::Other(exit) => Err(Error::UnexpectedExit { vcpu, exit }),
        }
    }

    /// What the guest's MMIO write to `addr` means: the call returned, or the guest took an
    /// exception, or something else wrote there.
    fn mmio_outcome(&self, vcpu: usize, addr: u64) -> Result<CallExit, Error> {
        let fd = self.vcpu_fd(vcpu)?;
        let get = |id| get_u64(fd, id).map_err(sys("KVM_GET_ONE_REG"));
        match guest::classify_mmio(addr) {
            MmioExit::Returned => Ok(CallExit::Returned {
                x: self.read_x(vcpu)?,
            }),
            MmioExit::Vector(index) => Err(Error::GuestException {
                vcpu,
                vector: guest::vector_name(index),
                esr: get(regs::ESR_EL1)?,
                elr: get(regs::ELR_EL1)?,
                far: get(regs::FAR_EL1)?,
            }),
            MmioExit::Unknown => Err(Error::UnexpectedMmio {
                vcpu,
                addr,
                write: true,
            }),
        }
    }

    /// KVM_RUN under the watchdog. `None`: the wait limit ran out.
    fn run_watched(&mut self, vcpu: usize) -> Result<Option<Exit>, Error> {
        let limit = self.wait_limit();
        let fd = self.vcpu_fd_mut(vcpu)?;
        fd.set_kvm_immediate_exit(0);
        let immediate_exit: *mut u8 = &raw mut fd.get_kvm_run().immediate_exit;
        let watchdog = Watchdog::arm(limit, immediate_exit)?;
        let result = loop {
            match fd.run() {
                Ok(exit) => break Ok(Some(Exit::from(exit))),
                Err(e) if e.errno() == libc::EINTR && watchdog.fired() => break Ok(None),
                // Another signal: run on (only the watchdog sets immediate_exit).
                Err(e) if e.errno() == libc::EINTR => {}
                Err(e) => break Err(sys("KVM_RUN")(e)),
            }
        };
        watchdog.disarm()?;
        fd.set_kvm_immediate_exit(0);
        result
    }

    /// Completes an MMIO exit: KVM finishes the access and moves the PC past the store only
    /// on the next KVM_RUN, which `immediate_exit = 1` makes return (EINTR) before the guest
    /// runs. Without it, the next call's new PC would be advanced by 4 and skip its HVC.
    fn complete_mmio(&mut self, vcpu: usize) -> Result<(), Error> {
        let fd = self.vcpu_fd_mut(vcpu)?;
        fd.set_kvm_immediate_exit(1);
        let result = fd.run().map(|exit| format!("{exit:?}"));
        fd.set_kvm_immediate_exit(0);
        match result {
            Err(e) if e.errno() == libc::EINTR => Ok(()),
            Err(e) => Err(sys("KVM_RUN (completing an MMIO exit)")(e)),
            Ok(exit) => Err(Error::UnexpectedExit {
                vcpu,
                exit: format!("{exit} while completing an MMIO exit"),
            }),
        }
    }

    fn read_x(&self, vcpu: usize) -> Result<[u64; 4], Error> {
        let fd = self.vcpu_fd(vcpu)?;
        let mut x = [0; 4];
        for (i, value) in x.iter_mut().enumerate() {
            *value = get_u64(fd, regs::x(i)).map_err(sys("KVM_GET_ONE_REG"))?;
        }
        Ok(x)
    }
}

/// A KVM_RUN exit, owned (kvm-ioctls' borrows the vCPU).
#[derive(Debug)]
enum Exit {
    Mmio { addr: u64, write: bool },
    SystemEvent { kind: u32, data: Vec<u64> },
    Hypercall { nr: u64, flags: u64 },
    Other(String),
}

impl From<VcpuExit<'_>> for Exit {
    fn from(exit: VcpuExit<'_>) -> Exit {
        match exit {
            VcpuExit::MmioWrite(addr, _) => Exit::Mmio { addr, write: true },
            VcpuExit::MmioRead(addr, _) => Exit::Mmio { addr, write: false },
            VcpuExit::SystemEvent(kind, data) => Exit::SystemEvent {
                kind,
                data: data.to_vec(),
            },
            // kvm-ioctls reads the x86 `longmode` member of the union that arm64 calls
            // `flags`: the low 32 bits, which hold every flag defined.
            VcpuExit::Hypercall(h) => Exit::Hypercall {
                nr: h.nr,
                flags: u64::from(h.longmode),
            },
            other => Exit::Other(format!("{other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypercall_exit_as_call_result_drops_the_registers() {
        let exit = CallExit::Hypercall {
            nr: 0x8400_0000,
            flags: 1,
            x: [0x8400_0000, 1, 2, 3],
        };
        assert_eq!(
            CallResult::from(exit),
            CallResult::Hypercall {
                nr: 0x8400_0000,
                flags: 1
            }
        );
    }

    #[test]
    fn blocked_exit_as_call_result_keeps_mp_state_and_registers() {
        let exit = CallExit::Blocked {
            mp_state: 10,
            x: [1, 2, 3, 4],
        };
        assert_eq!(
            CallResult::from(exit),
            CallResult::Blocked {
                mp_state: 10,
                x: [1, 2, 3, 4]
            }
        );
    }
}
