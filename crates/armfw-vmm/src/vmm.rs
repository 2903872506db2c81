// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The VMM proper (Linux/aarch64): one VM, its RAM, the kernel, initramfs and device tree
//! in it, N vCPUs with one thread each, KVM's in-kernel vGICv3 and arch timer, and the
//! 16550 console. The guest's PSCI/SMCCC calls go to KVM's in-kernel firmware or, with
//! [`FirmwareMode::Armfw`], to armfw's engine ([`FirmwareServer`]) through the SMCCC
//! filter.
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

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use armfw::abi::FunctionId;
use armfw::firmware::{Action, SystemEventType, VcpuFeatures, VcpuStart};
use armfw::snapshot::FilterRange;
use armfw_kvm::regs;
use armfw_kvm::serve::{FirmwareServer, HostServices, VcpuServer};
use kvm_bindings::{
    KVM_ARM_IRQ_TYPE_SHIFT, KVM_ARM_IRQ_TYPE_SPI, KVM_ARM_VCPU_POWER_OFF, KVM_ARM_VCPU_PSCI_0_2,
    KVM_MP_STATE_RUNNABLE, KVM_MP_STATE_SUSPENDED, KVM_SYSTEM_EVENT_WAKEUP, kvm_mp_state,
    kvm_vcpu_init,
};
use kvm_ioctls::{DeviceFd, Kvm, VcpuExit, VcpuFd, VmFd};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::console::{ConsoleState, INIT_KEY, LineAssembler, parse_guest_line};
use crate::fdt::{self, FdtConfig};
use crate::image::ImageHeader;
use crate::layout::{
    GIC_DIST_BASE, GIC_NR_IRQS, GIC_REDIST_BASE, Layout, MAX_VCPUS, RAM_BASE, UART_BASE, UART_SIZE,
    UART_SPI,
};
use crate::report::{FirmwareMode, RunExit, RunResult, name_calls};
use crate::uart::Uart16550;

/// PSCI/SMCCC NOT_SUPPORTED (-1), for a call the engine forwards to a VMM that has nothing
/// to answer it with.
const NOT_SUPPORTED: u64 = u64::MAX;

/// One guest run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmConfig {
    /// The arm64 `Image` (uncompressed).
    pub kernel: PathBuf,
    /// The initramfs, if any.
    pub initrd: Option<PathBuf>,
    /// vCPUs (1 to [`MAX_VCPUS`]).
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
        None => setup(cfg),
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
            .spawn(move || vcpu_thread(i, fd, server, off, &shared, &start_rx, &tx));
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

/// The 16550 and what its output has said so far.
#[derive(Debug)]
pub(crate) struct Console {
    uart: Uart16550,
    lines: LineAssembler,
    irq_level: bool,
    prefix: String,
    guest: Vec<(String, String)>,
    init_at: Option<Instant>,
    /// The guest line to pause at, and where to say it came.
    pause_at: Option<(String, String)>,
    pause_tx: Option<Sender<Outcome>>,
}

impl Console {
    pub(crate) fn new(prefix: &str, pause_at: Option<(String, String)>) -> Console {
        Console {
            uart: Uart16550::new(),
            lines: LineAssembler::new(),
            irq_level: false,
            prefix: prefix.to_string(),
            guest: Vec::new(),
            init_at: None,
            pause_at,
            pause_tx: None,
        }
    }

    /// The console as restored from a bundle.
    pub(crate) fn resume(&mut self, state: &ConsoleState) {
        self.uart = state.uart.clone();
        self.irq_level = state.irq_level;
        self.lines = LineAssembler::resume(&state.partial_line);
    }

    /// The console as a bundle carries it.
    pub(crate) fn state(&self) -> ConsoleState {
        ConsoleState {
            uart: self.uart.clone(),
            irq_level: self.irq_level,
            partial_line: self.lines.partial(),
        }
    }

    fn line(&mut self, line: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}{line}", self.prefix);
        if let Some((key, value)) = parse_guest_line(line) {
            if key == INIT_KEY && self.init_at.is_none() {
                self.init_at = Some(Instant::now());
            }
            if self.pause_at.as_ref() == Some(&(key.clone(), value.clone())) {
                if let Some(tx) = self.pause_tx.take() {
                    let _ = tx.send(Outcome::PauseNow);
                }
            }
            self.guest.push((key, value));
        }
    }
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

/// Everything before the first KVM_RUN.
fn setup(cfg: &VmConfig) -> Result<Parts, VmmError> {
    if cfg.vcpus == 0 || cfg.vcpus > MAX_VCPUS {
        return Err(VmmError(format!(
            "{} vCPUs: the machine has 1 to {MAX_VCPUS}",
            cfg.vcpus
        )));
    }
    let image = std::fs::read(&cfg.kernel).map_err(ctx("reading the kernel"))?;
    let header = ImageHeader::parse(&image).map_err(ctx("the kernel"))?;
    let initrd = match &cfg.initrd {
        Some(path) => std::fs::read(path).map_err(ctx("reading the initramfs"))?,
        None => Vec::new(),
    };
    let ram_size = cfg
        .memory_mib
        .checked_mul(1 << 20)
        .ok_or_else(|| VmmError(format!("{} MiB of RAM", cfg.memory_mib)))?;
    let layout = Layout::plan(ram_size, &header, image.len() as u64, initrd.len() as u64)
        .map_err(ctx("memory layout"))?;

    let (vm, memory) = new_vm(ram_size)?;
    memory
        .write_slice(&image, GuestAddress(layout.kernel_addr))
        .map_err(ctx("loading the kernel"))?;
    drop(image);
    let initrd_range =
        (!initrd.is_empty()).then(|| (layout.initrd_addr, layout.initrd_addr + layout.initrd_size));
    if !initrd.is_empty() {
        memory
            .write_slice(&initrd, GuestAddress(layout.initrd_addr))
            .map_err(ctx("loading the initramfs"))?;
    }
    let blob = fdt::build(&FdtConfig {
        vcpus: cfg.vcpus,
        ram_size,
        bootargs: cfg.bootargs.clone(),
        initrd: initrd_range,
    })
    .map_err(ctx("device tree"))?;
    memory
        .write_slice(&blob, GuestAddress(layout.fdt_addr))
        .map_err(ctx("loading the device tree"))?;

    // A pool baseline: worked out before the vCPUs exist (its capability comes first).
    let baseline = match &cfg.baseline {
        Some(dir) => Some(crate::migrate::pool_baseline(cfg, dir)?),
        None => None,
    };
    let writable_imp_id_regs = baseline
        .as_ref()
        .is_some_and(|b| b.recipe.writable_imp_id_regs);
    if writable_imp_id_regs {
        vm.enable_cap(&kvm_bindings::kvm_enable_cap {
            cap: kvm_bindings::KVM_CAP_ARM_WRITABLE_IMP_ID_REGS,
            ..Default::default()
        })
        .map_err(ctx("KVM_ENABLE_CAP(KVM_CAP_ARM_WRITABLE_IMP_ID_REGS)"))?;
    }

    // The vCPUs: KVM's preferred target, PSCI 0.2+, the secondaries powered off.
    let mut base = kvm_vcpu_init::default();
    vm.get_preferred_target(&mut base)
        .map_err(ctx("KVM_ARM_PREFERRED_TARGET"))?;
    base.features[0] |= 1 << KVM_ARM_VCPU_PSCI_0_2;
    let mut vcpus = Vec::with_capacity(cfg.vcpus);
    let mut inits = Vec::with_capacity(cfg.vcpus);
    for i in 0..cfg.vcpus {
        let fd = vm.create_vcpu(i as u64).map_err(ctx("KVM_CREATE_VCPU"))?;
        let mut init = base;
        if i > 0 {
            init.features[0] |= 1 << KVM_ARM_VCPU_POWER_OFF;
        }
        fd.vcpu_init(&init).map_err(ctx("KVM_ARM_VCPU_INIT"))?;
        vcpus.push(fd);
        inits.push(init);
    }
    let gic = armfw_kvm::vgic::create(&vm, GIC_DIST_BASE, GIC_REDIST_BASE, GIC_NR_IRQS)
        .map_err(ctx("the vGIC"))?;
    // The pool's CPU and firmware, before the first KVM_RUN: the guest sees them from its
    // first instruction.
    let (vcpus, inits) = match &baseline {
        None => (vcpus, inits),
        Some(b) => crate::migrate::apply_pool_baseline(&vm, vcpus, inits, b)?,
    };
    // The boot protocol: x0 = the device tree, x1..x3 = 0, PC = the Image; KVM's reset
    // already gives EL1h with DAIF masked and the MMU off.
    set_reg(&vcpus[0], regs::PC, layout.kernel_addr)?;
    set_reg(&vcpus[0], regs::x(0), layout.fdt_addr)?;
    for n in 1..4 {
        set_reg(&vcpus[0], regs::x(n), 0)?;
    }

    let servers = match cfg.firmware {
        FirmwareMode::Kernel => None,
        FirmwareMode::Armfw => {
            // The running host's own profile: the guest cannot tell the difference.
            let profile = armfw_kvm::probe::probe(cfg.cpu.as_deref(), None)
                .map_err(ctx("probing the host"))?;
            let mut server = FirmwareServer::new(&profile);
            for i in 0..cfg.vcpus {
                let fw = server.firmware_mut();
                fw.add_vcpu().map_err(ctx("firmware: add_vcpu"))?;
                fw.init_vcpu(
                    i,
                    VcpuFeatures {
                        psci_0_2: true,
                        power_off: i > 0,
                    },
                )
                .map_err(ctx("firmware: init_vcpu"))?;
            }
            if let Some(b) = &baseline {
                crate::migrate::engine_baseline(server.firmware_mut(), b)?;
            }
            server
                .install(&vm)
                .map_err(ctx("installing the SMCCC filter"))?;
            // One share per vCPU thread: no lock around the whole engine (see
            // armfw::firmware::shared for its locks).
            Some(server.share().1)
        }
    };
    let smccc_filter = if servers.is_some() {
        armfw_kvm::serve::FORWARDED_RANGES
            .iter()
            .map(|&(base, nr_functions)| FilterRange {
                base,
                nr_functions,
                action: armfw::firmware::FilterAction::Forward,
            })
            .collect()
    } else {
        Vec::new()
    };
    let shared = Shared::new(
        cfg,
        vm,
        (memory, ram_size),
        inits,
        gic,
        smccc_filter,
        writable_imp_id_regs,
    );
    let (shared, starts) = shared;
    let off = (0..cfg.vcpus).map(|i| i > 0 && servers.is_some()).collect();
    Ok(Parts {
        shared,
        vcpus,
        starts,
        servers,
        off,
    })
}

/// A new VM (no vCPU yet) with `ram_size` bytes of RAM at [`RAM_BASE`], registered.
pub(crate) fn new_vm(ram_size: u64) -> Result<(VmFd, &'static GuestMemoryMmap), VmmError> {
    let kvm = Kvm::new().map_err(ctx("opening /dev/kvm"))?;
    // Type 0: the default 40-bit IPA space (kvm-ioctls' create_vm asks for the largest,
    // which makes closing a VM take seconds on Linux 7.x; docs/kvm-backend-notes.md).
    let vm = kvm.create_vm_with_type(0).map_err(ctx("KVM_CREATE_VM"))?;
    // Leaked: KVM uses the RAM as long as the VM exists, which is the rest of the process.
    let memory: &'static GuestMemoryMmap = Box::leak(Box::new(
        GuestMemoryMmap::<()>::from_ranges(&[(
            GuestAddress(RAM_BASE),
            usize::try_from(ram_size).map_err(ctx("RAM size"))?,
        )])
        .map_err(ctx("allocating guest RAM"))?,
    ));
    armfw_kvm::memory::register_ram(&vm, 0, memory).map_err(ctx("guest RAM"))?;
    Ok((vm, memory))
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

fn set_reg(fd: &VcpuFd, id: u64, value: u64) -> Result<(), VmmError> {
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

fn vcpu_thread(
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

impl Shared {
    fn mmio_read(&self, addr: u64, data: &mut [u8]) -> Result<(), VmmError> {
        data.fill(0);
        let (Some(offset), Some(first)) = (uart_offset(addr), data.first_mut()) else {
            return Ok(());
        };
        let mut console = lock(&self.console);
        *first = console.uart.read(offset);
        // Reading IIR can clear the interrupt.
        self.update_irq(&mut console)
    }

    fn mmio_write(&self, addr: u64, data: &[u8]) -> Result<(), VmmError> {
        let (Some(offset), Some(&value)) = (uart_offset(addr), data.first()) else {
            return Ok(());
        };
        let mut console = lock(&self.console);
        if let Some(byte) = console.uart.write(offset, value) {
            if let Some(line) = console.lines.push(byte) {
                console.line(&line);
            }
        }
        self.update_irq(&mut console)
    }

    /// Drives the UART's SPI to the UART's interrupt output (KVM_IRQ_LINE, level).
    fn update_irq(&self, console: &mut Console) -> Result<(), VmmError> {
        let level = console.uart.irq_level();
        if level != console.irq_level {
            let irq = (KVM_ARM_IRQ_TYPE_SPI << KVM_ARM_IRQ_TYPE_SHIFT) | (32 + UART_SPI);
            self.vm
                .set_irq_line(irq, level)
                .map_err(ctx("KVM_IRQ_LINE (UART)"))?;
            console.irq_level = level;
        }
        Ok(())
    }
}

fn uart_offset(addr: u64) -> Option<u64> {
    (UART_BASE..UART_BASE + UART_SIZE)
        .contains(&addr)
        .then(|| addr - UART_BASE)
}
