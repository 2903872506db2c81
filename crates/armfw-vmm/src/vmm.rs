// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The VMM proper (Linux/aarch64): one VM, its RAM, the kernel, initramfs and device tree
//! in it, N vCPUs with one thread each, KVM's in-kernel vGICv3 and arch timer, and the
//! 16550 console. The guest's PSCI/SMCCC calls go to KVM's in-kernel firmware or, with
//! [`FirmwareMode::Armfw`], to armfw's engine
//! ([`FirmwareServer`](armfw_kvm::serve::FirmwareServer)) through the SMCCC filter.
//!
//! # vCPU threads
//!
//! Each vCPU's thread owns its fd: KVM serialises the ioctls of one vCPU (another thread's
//! ioctl waits for the KVM_RUN in progress), so every register write to a vCPU happens on
//! its own thread.
//!
//! - Kernel firmware: every thread enters KVM_RUN at once; KVM keeps the secondaries
//!   (created with `KVM_ARM_VCPU_POWER_OFF`) asleep until a CPU_ON, and puts a CPU_OFF'd
//!   vCPU back to sleep inside KVM_RUN.
//! - armfw firmware: a vCPU that is off does not enter KVM_RUN at all. Its thread waits for
//!   a start message; CPU_ON (answered on the caller's thread) sends it, and the target's
//!   thread does what KVM does on a CPU_ON: KVM_ARM_VCPU_INIT again with the vCPU's
//!   features (a reset), MP state RUNNABLE, PC = entry, x0 = context id. CPU_OFF (the
//!   engine has already made the vCPU STOPPED in KVM) sends the thread back to waiting.
//!   CPU_SUSPEND sets the MP state SUSPENDED, so that KVM waits as for a WFI and exits with
//!   a WAKEUP event, after which the vCPU is RUNNABLE again with x0 = SUCCESS: what KVM's
//!   own CPU_SUSPEND does (Linux only calls it with idle states in its device tree, which
//!   this one has none of).
//!
//! The first system event (SHUTDOWN, RESET, CRASH) from any vCPU ends the run; the process
//! is expected to exit then ([`run`] leaves the VM and its threads as they are: closing
//! a VM costs time under emulation and the process is about to end).
//!
//! The parts: `boot` creates a VM from a kernel, `vcpu` is each vCPU's thread and its
//! KVM_RUN loop, `devices` the console and the MMIO exits that reach it; save and restore
//! are the crate's `migrate`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use armfw::abi::FunctionId;
use armfw::firmware::{SystemEventType, VcpuStart};
use armfw::snapshot::FilterRange;
use armfw_kvm::regs;
use armfw_kvm::serve::VcpuServer;
use kvm_bindings::kvm_vcpu_init;
use kvm_ioctls::{DeviceFd, VcpuFd, VmFd};
use vm_memory::GuestMemoryMmap;

use crate::report::{FirmwareMode, RunExit, RunResult, name_calls};

mod boot;
mod devices;
mod vcpu;

pub(crate) use boot::new_vm;
pub(crate) use devices::Console;

/// One guest run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmConfig {
    /// The arm64 `Image` (uncompressed).
    pub kernel: PathBuf,
    /// The initramfs, if any.
    pub initrd: Option<PathBuf>,
    /// vCPUs (1 to [`MAX_VCPUS`](crate::layout::MAX_VCPUS)).
    pub vcpus: usize,
    /// RAM in MiB.
    pub memory_mib: u64,
    /// Whose firmware the guest gets.
    pub firmware: FirmwareMode,
    /// The kernel command line.
    pub bootargs: String,
    /// The run is given up after this long (from the first KVM_RUN).
    pub timeout: Duration,
    /// The CPU model to name the probed host profile after (armfw mode), e.g. `max`.
    pub cpu: Option<String>,
    /// Printed before each guest console line on stdout.
    pub prefix: String,
    /// Pause the running VM when the guest prints this `@@GUEST <key> <value>` line, save it
    /// to `save_to` as a bundle ([`armfw::bundle`]) and end the run ([`RunExit::Saved`]).
    pub pause_at: Option<(String, String)>,
    /// Where the bundle goes.
    pub save_to: Option<PathBuf>,
    /// Restore the VM in this bundle and run it on, instead of booting `kernel`.
    pub restore_from: Option<PathBuf>,
    /// Create the VM with the baseline of the pool whose host profiles are in this folder
    /// (`*.json`; this host's among them): the pool's CPU ([`armfw::compat::cpu_baseline`])
    /// and firmware ([`armfw::compat::baseline`]).
    pub baseline: Option<PathBuf>,
}

/// Why a run could not be set up or went wrong.
#[derive(Debug)]
pub(crate) struct VmmError(pub(crate) String);

impl fmt::Display for VmmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Maps any displayable error to a [`VmmError`] that says what was being done.
pub(crate) fn ctx<E: fmt::Display>(what: &'static str) -> impl Fn(E) -> VmmError {
    move |e| VmmError(format!("{what}: {e}"))
}

/// Boots the guest `cfg` describes (or restores the one `cfg.restore_from` holds) and runs
/// it until its first system event, an error, the time limit, or the pause `cfg.pause_at`
/// asks for. The guest's console lines go to stdout as they come. Never returns an error: a
/// run that could not be set up is a [`RunExit::Error`] result.
pub fn run(cfg: &VmConfig) -> RunResult {
    let started = Instant::now();
    let mut result = RunResult::new(cfg.firmware, cfg.vcpus);
    let parts = match &cfg.restore_from {
        None => boot::setup(cfg),
        Some(path) => crate::migrate::restore(cfg, path, &mut result),
    };
    let parts = match parts {
        Ok(parts) => parts,
        Err(e) => {
            if result.exit != RunExit::Refused {
                result.error = Some(e.0);
            }
            result.setup_ms = millis(started.elapsed());
            return result;
        }
    };
    if let Err(e) = armfw_kvm::kick::install() {
        result.error = Some(e.to_string());
        return result;
    }
    let Parts {
        shared,
        vcpus,
        starts,
        servers,
        off,
    } = parts;
    let shared = Arc::new(shared);
    let (outcome_tx, outcome_rx) = mpsc::channel();
    lock(&shared.console).pause_tx = cfg.pause_at.is_some().then(|| outcome_tx.clone());
    let first_run = Instant::now();
    result.setup_ms = millis(first_run - started);
    let mut servers = servers.map(Vec::into_iter);
    let mut threads: Vec<Option<JoinHandle<()>>> = Vec::new();
    for (i, ((fd, start_rx), off)) in vcpus.into_iter().zip(starts).zip(off).enumerate() {
        let (shared, tx) = (Arc::clone(&shared), outcome_tx.clone());
        // In armfw mode each thread owns its vCPU's share of the engine.
        let server = servers.as_mut().and_then(Iterator::next);
        let spawned = thread::Builder::new()
            .name(format!("vcpu{i}"))
            .spawn(move || vcpu::vcpu_thread(i, fd, server, off, &shared, &start_rx, &tx));
        match spawned {
            Ok(handle) => threads.push(Some(handle)),
            Err(e) => {
                threads.push(None);
                let _ = outcome_tx.send(Outcome::Failed {
                    vcpu: i,
                    error: format!("spawning the thread: {e}"),
                });
            }
        }
    }
    let deadline = first_run + cfg.timeout;
    let mut paused: Vec<Option<(VcpuFd, Option<VcpuServer>)>> =
        threads.iter().map(|_| None).collect();
    let mut pause_started: Option<Instant> = None;
    let outcome = loop {
        let wait = match pause_started {
            // While pausing, kick the vCPUs still running every few milliseconds.
            Some(_) => Duration::from_millis(5),
            None => deadline.saturating_duration_since(Instant::now()),
        };
        match outcome_rx.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) if pause_started.is_some() => {
                if Instant::now() > deadline {
                    break None;
                }
            }
            // The time limit ran out (or every thread ended without a word, which they
            // cannot: each sends its outcome).
            Err(_) => break None,
            Ok(Outcome::PauseNow) => {
                if pause_started.is_none() {
                    pause_started = Some(Instant::now());
                    shared.pause.store(true, Ordering::SeqCst);
                }
            }
            Ok(Outcome::Paused { vcpu, fd, server }) => {
                if let Some(slot) = paused.get_mut(vcpu) {
                    *slot = Some((fd, *server));
                }
                if let Some(t) = threads.get_mut(vcpu).and_then(Option::take) {
                    let _ = t.join();
                }
                if paused.iter().all(Option::is_some) {
                    break Some(Outcome::PauseNow);
                }
            }
            Ok(other) => break Some(other),
        }
        if pause_started.is_some() {
            for t in threads.iter().flatten() {
                let _ = armfw_kvm::kick::kick(t);
            }
        }
    };
    result.total_ms = millis(first_run.elapsed());
    match outcome {
        None => {
            result.exit = RunExit::Timeout;
            // Where the guest was: pause what still runs and read its vCPUs.
            shared.pause.store(true, Ordering::SeqCst);
            let until = Instant::now() + Duration::from_secs(3);
            while Instant::now() < until && paused.iter().any(Option::is_none) {
                for t in threads.iter().flatten() {
                    let _ = armfw_kvm::kick::kick(t);
                }
                if let Ok(Outcome::Paused { vcpu, fd, server }) =
                    outcome_rx.recv_timeout(Duration::from_millis(5))
                {
                    if let Some(slot) = paused.get_mut(vcpu) {
                        *slot = Some((fd, *server));
                    }
                }
            }
            result.error = Some(format!("the guest stalled: {}", positions(&paused)));
        }
        Some(Outcome::PauseNow) => {
            let pause_ms = pause_started.map(|t| millis(t.elapsed()));
            let vcpus: Vec<(VcpuFd, Option<VcpuServer>)> = paused.into_iter().flatten().collect();
            let save_started = Instant::now();
            let path = cfg.save_to.clone().unwrap_or_default();
            match crate::migrate::save(&shared, cfg, vcpus, &path) {
                Ok(mut m) => {
                    m.pause_ms = pause_ms;
                    m.save_ms = Some(millis(save_started.elapsed()));
                    m.paused_after = cfg.pause_at.as_ref().map(|(_, v)| v.clone());
                    result.migration = Some(m);
                    result.exit = RunExit::Saved;
                }
                Err(e) => result.error = Some(format!("saving the VM: {}", e.0)),
            }
        }
        Some(Outcome::Event { kind, data, vcpu }) => {
            result.exit = match kind {
                SystemEventType::Shutdown => RunExit::Shutdown,
                SystemEventType::Reset => RunExit::Reset,
                SystemEventType::Crash => RunExit::Crash,
                // The vCPU loops never report the others.
                SystemEventType::Wakeup | SystemEventType::Suspend => RunExit::Error,
            };
            result.exit_data = data;
            result.exit_vcpu = Some(vcpu);
        }
        Some(Outcome::Failed { vcpu, error }) => {
            result.error = Some(format!("vCPU {vcpu}: {error}"));
            result.exit_vcpu = Some(vcpu);
        }
        Some(Outcome::Paused { .. }) => result.error = Some("a vCPU paused unasked".into()),
    }
    let mut console = lock(&shared.console);
    if result.exit != RunExit::Saved {
        if let Some(line) = console.lines.flush() {
            console.line(&line);
        }
    }
    result.guest = std::mem::take(&mut console.guest);
    result.boot_to_init_ms = console.init_at.map(|t| millis(t - first_run));
    drop(console);
    result.userspace_calls = name_calls(shared.calls.iter().map(|c| std::mem::take(&mut *lock(c))));
    result
}

/// Each paused vCPU's PC, PSTATE, ELR_EL1, ESR_EL1 and MP state, for a run that timed out.
fn positions(paused: &[Option<(VcpuFd, Option<VcpuServer>)>]) -> String {
    let read = |fd: &VcpuFd, id: u64| {
        let mut b = [0u8; 8];
        fd.get_one_reg(id, &mut b)
            .map_or("?".to_string(), |_| format!("{:#x}", u64::from_le_bytes(b)))
    };
    paused
        .iter()
        .enumerate()
        .map(|(i, p)| match p {
            None => format!("vCPU {i} did not stop"),
            Some((fd, _)) => format!(
                "vCPU {i} PC {} PSTATE {} ELR_EL1 {} ESR_EL1 {} MP state {}, timer CTL {} CVAL {} CNT {}",
                read(fd, regs::PC),
                read(fd, regs::PSTATE),
                read(fd, regs::ELR_EL1),
                read(fd, regs::ESR_EL1),
                fd.get_mp_state()
                    .map_or("?".into(), |m| m.mp_state.to_string()),
                read(fd, armfw::abi::vcpu_reg::TIMER_CTL),
                read(fd, armfw::abi::vcpu_reg::TIMER_CVAL),
                read(fd, armfw::abi::vcpu_reg::TIMER_CNT),
            ),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A lock whose holder panicked is used as it stands (every change under these locks
/// leaves the state whole).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the vCPU threads share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) vm: VmFd,
    pub(crate) memory: &'static GuestMemoryMmap,
    /// Guest RAM's size (one range at RAM_BASE).
    pub(crate) ram_size: u64,
    pub(crate) console: Mutex<Console>,
    /// Calls answered in userspace, per vCPU (each thread counts its own), by function id.
    calls: Vec<Mutex<BTreeMap<FunctionId, u64>>>,
    /// Each vCPU's KVM_ARM_VCPU_INIT argument (for the CPU_ON reset).
    pub(crate) inits: Vec<kvm_vcpu_init>,
    /// Each vCPU's start channel (armfw mode).
    starts: Vec<Sender<VcpuStart>>,
    /// The vGIC: kept open for the VM's lifetime.
    pub(crate) gic: DeviceFd,
    /// Set to pause: every vCPU thread leaves KVM_RUN and hands its vCPU back.
    pause: AtomicBool,
    /// The SMCCC filter ranges the VMM installed (armfw mode).
    pub(crate) smccc_filter: Vec<FilterRange>,
    /// KVM_CAP_ARM_WRITABLE_IMP_ID_REGS is enabled on the VM.
    pub(crate) writable_imp_id_regs: bool,
}

/// What ends a vCPU thread, or asks the main thread to pause the VM.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The guest printed the pause line.
    PauseNow,
    /// The vCPU is out of KVM_RUN for good and handed back.
    Paused {
        vcpu: usize,
        fd: VcpuFd,
        server: Box<Option<VcpuServer>>,
    },
    Event {
        kind: SystemEventType,
        data: Vec<u64>,
        vcpu: usize,
    },
    Failed {
        vcpu: usize,
        error: String,
    },
}

/// A VM ready to run: the shared part, the vCPU fds, their start channels, in armfw mode
/// each vCPU's share of the engine, and which vCPUs are off (armfw mode: their threads wait
/// for a CPU_ON).
pub(crate) struct Parts {
    pub(crate) shared: Shared,
    pub(crate) vcpus: Vec<VcpuFd>,
    pub(crate) starts: Vec<Receiver<VcpuStart>>,
    pub(crate) servers: Option<Vec<VcpuServer>>,
    pub(crate) off: Vec<bool>,
}

impl Shared {
    /// The shared part of a VM ready to run, and each vCPU's start channel.
    pub(crate) fn new(
        cfg: &VmConfig,
        vm: VmFd,
        (memory, ram_size): (&'static GuestMemoryMmap, u64),
        inits: Vec<kvm_vcpu_init>,
        gic: DeviceFd,
        smccc_filter: Vec<FilterRange>,
        writable_imp_id_regs: bool,
    ) -> (Shared, Vec<Receiver<VcpuStart>>) {
        let n = inits.len();
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::channel()).unzip();
        let shared = Shared {
            vm,
            memory,
            ram_size,
            console: Mutex::new(Console::new(&cfg.prefix, cfg.pause_at.clone())),
            calls: (0..n).map(|_| Mutex::new(BTreeMap::new())).collect(),
            inits,
            starts: senders,
            gic,
            pause: AtomicBool::new(false),
            smccc_filter,
            writable_imp_id_regs,
        };
        (shared, receivers)
    }
}
