// SPDX-License-Identifier: Apache-2.0 OR MIT
//! One vCPU's thread: its KVM_RUN loop, the hypercalls armfw's engine answers, the wait of a
//! vCPU that is off for its CPU_ON, and the hand-back of the vCPU when the VM pauses (see
//! the parent module's "vCPU threads").

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use armfw::abi::FunctionId;
use armfw::firmware::{Action, SystemEventType, VcpuStart};
use armfw_kvm::regs;
use armfw_kvm::serve::{HostServices, VcpuServer};
use kvm_bindings::{
    KVM_MP_STATE_RUNNABLE, KVM_MP_STATE_SUSPENDED, KVM_SYSTEM_EVENT_WAKEUP, kvm_mp_state,
};
use kvm_ioctls::{VcpuExit, VcpuFd};
use vm_memory::{Bytes, GuestAddress};

use super::{Outcome, Shared, VmmError, ctx, lock};

/// PSCI/SMCCC NOT_SUPPORTED (-1), for a call the engine forwards to a VMM that has nothing
/// to answer it with.
const NOT_SUPPORTED: u64 = u64::MAX;

pub(super) fn set_reg(fd: &VcpuFd, id: u64, value: u64) -> Result<(), VmmError> {
    fd.set_one_reg(id, &value.to_le_bytes())
        .map(|_| ())
        .map_err(ctx("KVM_SET_ONE_REG"))
}

fn set_mp_state(fd: &VcpuFd, mp_state: u32) -> Result<(), VmmError> {
    fd.set_mp_state(kvm_mp_state { mp_state })
        .map_err(ctx("KVM_SET_MP_STATE"))
}

/// What one KVM_RUN asks of the thread, with kvm-ioctls' borrow of the vCPU ended.
enum Step {
    Continue,
    Hypercall { nr: u64, flags: u64 },
    Wakeup,
    Event(SystemEventType, Vec<u64>),
    Fail(String),
}

/// How a vCPU loop ends: with an outcome, or paused (the vCPU is out of KVM_RUN, any MMIO
/// access it made completed).
enum End {
    Outcome(Outcome),
    Paused,
}

pub(super) fn vcpu_thread(
    i: usize,
    mut fd: VcpuFd,
    mut server: Option<VcpuServer>,
    off: bool,
    shared: &Shared,
    start: &Receiver<VcpuStart>,
    outcome: &Sender<Outcome>,
) {
    match vcpu_loop(i, &mut fd, server.as_mut(), off, shared, start) {
        End::Outcome(result) => {
            let _ = outcome.send(result);
            // Keep the vCPU as it is: the process ends after the first outcome.
            std::mem::forget(fd);
        }
        End::Paused => {
            let _ = outcome.send(Outcome::Paused {
                vcpu: i,
                fd,
                server: Box::new(server),
            });
        }
    }
}

/// KVM_RUN once with `immediate_exit` set: KVM completes the MMIO access the last exit
/// reported (the value a read returns goes into the guest's register) and returns at once,
/// so that a save reads the vCPU as it stands after the access (api.rst, KVM_EXIT_MMIO).
fn complete_pending(fd: &mut VcpuFd) {
    fd.set_kvm_immediate_exit(1);
    let _ = fd.run();
    fd.set_kvm_immediate_exit(0);
}

fn vcpu_loop(
    i: usize,
    fd: &mut VcpuFd,
    mut server: Option<&mut VcpuServer>,
    off: bool,
    shared: &Shared,
    start: &Receiver<VcpuStart>,
) -> End {
    let failed = |e: VmmError| {
        End::Outcome(Outcome::Failed {
            vcpu: i,
            error: e.0,
        })
    };
    if let Some(server) = server.as_deref_mut() {
        if off {
            // Off until a CPU_ON.
            match wait_for_start(i, fd, shared, start) {
                Ok(true) => return End::Paused,
                Ok(false) => {}
                Err(e) => return failed(e),
            }
        }
        if let Err(e) = server.vcpu_run() {
            return failed(VmmError(format!("firmware: vcpu_run: {e}")));
        }
    }
    loop {
        if shared.pause.load(Ordering::SeqCst) {
            complete_pending(fd);
            return End::Paused;
        }
        let step = match fd.run() {
            Ok(VcpuExit::MmioRead(addr, data)) => match shared.mmio_read(addr, data) {
                Ok(()) => Step::Continue,
                Err(e) => Step::Fail(e.0),
            },
            Ok(VcpuExit::MmioWrite(addr, data)) => match shared.mmio_write(addr, data) {
                Ok(()) => Step::Continue,
                Err(e) => Step::Fail(e.0),
            },
            Ok(VcpuExit::Hypercall(h)) => Step::Hypercall {
                nr: h.nr,
                // kvm-ioctls names arm64's `flags` after x86's `longmode`, which overlays
                // its low 32 bits (every flag defined).
                flags: u64::from(h.longmode),
            },
            Ok(VcpuExit::SystemEvent(kind, _)) if kind == KVM_SYSTEM_EVENT_WAKEUP => Step::Wakeup,
            Ok(VcpuExit::SystemEvent(kind, data)) => match SystemEventType::from_kvm_value(kind) {
                Some(kind) => Step::Event(kind, data.to_vec()),
                None => Step::Fail(format!("system event of unknown type {kind}")),
            },
            Ok(other) => Step::Fail(format!("unexpected exit from KVM_RUN: {other:?}")),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => Step::Continue,
            Err(e) => Step::Fail(format!("KVM_RUN: {e}")),
        };
        match step {
            Step::Continue => {}
            Step::Wakeup => {
                // The end of a CPU_SUSPEND (armfw mode): run on.
                if let Err(e) = set_mp_state(fd, KVM_MP_STATE_RUNNABLE) {
                    return failed(e);
                }
            }
            Step::Event(kind, data) => {
                return End::Outcome(Outcome::Event {
                    kind,
                    data,
                    vcpu: i,
                });
            }
            Step::Fail(error) => return End::Outcome(Outcome::Failed { vcpu: i, error }),
            Step::Hypercall { nr, flags } => {
                match hypercall(i, fd, server.as_deref_mut(), shared, start, nr, flags) {
                    Ok(None) => {}
                    Ok(Some(end)) => return end,
                    Err(e) => return failed(e),
                }
            }
        }
    }
}

/// Answers a `KVM_EXIT_HYPERCALL` with armfw's engine and does what it says.
fn hypercall(
    i: usize,
    fd: &VcpuFd,
    server: Option<&mut VcpuServer>,
    shared: &Shared,
    start: &Receiver<VcpuStart>,
    nr: u64,
    flags: u64,
) -> Result<Option<End>, VmmError> {
    let Some(server) = server else {
        return Err(VmmError(format!(
            "KVM_EXIT_HYPERCALL {nr:#x} without armfw's firmware"
        )));
    };
    let out = server
        .handle_hypercall(fd, nr, flags, &mut HostServices::new(fd))
        .map_err(ctx("armfw firmware"))?;
    // KVM's nr is w0 (the function id), zero-extended.
    if let Some(calls) = shared.calls.get(i) {
        *lock(calls).entry(FunctionId::from_x0(nr)).or_insert(0) += 1;
    }
    match out.action {
        Action::Resume => {}
        Action::StartVcpu(s) => {
            let target = shared.starts.get(s.vcpu).ok_or_else(|| {
                VmmError(format!(
                    "CPU_ON of vCPU {} of {}",
                    s.vcpu,
                    shared.starts.len()
                ))
            })?;
            target
                .send(s)
                .map_err(|_| VmmError(format!("vCPU {}'s thread has ended", s.vcpu)))?;
        }
        Action::InitStolenTime { ipa } => {
            shared
                .memory
                .write_slice(&[0u8; 64], GuestAddress(ipa))
                .map_err(ctx("zeroing the stolen-time structure"))?;
        }
        Action::CpuOff => {
            if wait_for_start(i, fd, shared, start)? {
                return Ok(Some(End::Paused));
            }
        }
        Action::WaitForInterrupt => set_mp_state(fd, KVM_MP_STATE_SUSPENDED)?,
        Action::SystemEvent(event) => {
            return Ok(Some(End::Outcome(Outcome::Event {
                kind: event.kind,
                data: event.data,
                vcpu: i,
            })));
        }
        Action::Forward(_) => set_reg(fd, regs::x(0), NOT_SUPPORTED)?,
        other => return Err(VmmError(format!("armfw-vmm does not carry out {other:?}"))),
    }
    Ok(None)
}

/// A vCPU that is off: waits for its CPU_ON, then resets itself as KVM does. `Ok(true)`
/// when the VM is paused instead (the vCPU is left as it is: off).
fn wait_for_start(
    i: usize,
    fd: &VcpuFd,
    shared: &Shared,
    start: &Receiver<VcpuStart>,
) -> Result<bool, VmmError> {
    // A start already sent is applied before a pause is seen: it is the vCPU's state.
    let s = loop {
        match start.recv_timeout(Duration::from_millis(20)) {
            Ok(s) => break s,
            Err(RecvTimeoutError::Timeout) => {
                if shared.pause.load(Ordering::SeqCst) {
                    return Ok(true);
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(VmmError("the start channel closed".into()));
            }
        }
    };
    fd.vcpu_init(&shared.inits[i])
        .map_err(ctx("KVM_ARM_VCPU_INIT (CPU_ON reset)"))?;
    set_mp_state(fd, KVM_MP_STATE_RUNNABLE)?;
    set_reg(fd, regs::PC, s.entry)?;
    set_reg(fd, regs::x(0), s.context_id)?;
    Ok(false)
}
