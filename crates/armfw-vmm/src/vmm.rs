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
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use armfw::abi::FunctionId;
use armfw::firmware::{Action, SystemEventType, VcpuFeatures, VcpuStart};
use armfw_kvm::regs;
use armfw_kvm::serve::{FirmwareServer, HostServices, VcpuServer};
use kvm_bindings::{
    KVM_ARM_IRQ_TYPE_SHIFT, KVM_ARM_IRQ_TYPE_SPI, KVM_ARM_VCPU_POWER_OFF, KVM_ARM_VCPU_PSCI_0_2,
    KVM_DEV_ARM_VGIC_CTRL_INIT, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_DEV_ARM_VGIC_GRP_CTRL,
    KVM_DEV_ARM_VGIC_GRP_NR_IRQS, KVM_MP_STATE_RUNNABLE, KVM_MP_STATE_SUSPENDED,
    KVM_SYSTEM_EVENT_WAKEUP, KVM_VGIC_V3_ADDR_TYPE_DIST, KVM_VGIC_V3_ADDR_TYPE_REDIST,
    kvm_create_device, kvm_device_attr, kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V3, kvm_mp_state,
    kvm_vcpu_init,
};
use kvm_ioctls::{DeviceFd, Kvm, VcpuExit, VcpuFd, VmFd};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::console::{INIT_KEY, LineAssembler, parse_guest_line};
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
}

/// Why a run could not be set up or went wrong.
#[derive(Debug)]
struct VmmError(String);

impl fmt::Display for VmmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Maps any displayable error to a [`VmmError`] that says what was being done.
fn ctx<E: fmt::Display>(what: &'static str) -> impl Fn(E) -> VmmError {
    move |e| VmmError(format!("{what}: {e}"))
}

/// Boots the guest `cfg` describes and runs it until its first system event, an error or
/// the time limit. The guest's console lines go to stdout as they come. Never returns an
/// error: a run that could not be set up is a [`RunExit::Error`] result.
pub fn run(cfg: &VmConfig) -> RunResult {
    let started = Instant::now();
    let mut result = RunResult::new(cfg.firmware, cfg.vcpus);
    let (shared, vcpus, starts, servers) = match setup(cfg) {
        Ok(parts) => parts,
        Err(e) => {
            result.error = Some(e.0);
            result.setup_ms = millis(started.elapsed());
            return result;
        }
    };
    let shared = Arc::new(shared);
    let (outcome_tx, outcome_rx) = mpsc::channel();
    let first_run = Instant::now();
    result.setup_ms = millis(first_run - started);
    let mut servers = servers.map(Vec::into_iter);
    for (i, (fd, start_rx)) in vcpus.into_iter().zip(starts).enumerate() {
        let (shared, tx) = (Arc::clone(&shared), outcome_tx.clone());
        // In armfw mode each thread owns its vCPU's share of the engine.
        let server = servers.as_mut().and_then(Iterator::next);
        let spawned = thread::Builder::new()
            .name(format!("vcpu{i}"))
            .spawn(move || vcpu_thread(i, fd, server, &shared, &start_rx, &tx));
        if let Err(e) = spawned {
            let _ = outcome_tx.send(Outcome::Failed {
                vcpu: i,
                error: format!("spawning the thread: {e}"),
            });
        }
    }
    // Err: the time limit ran out (or every thread ended without a word, which they
    // cannot: each sends its outcome).
    let outcome = outcome_rx.recv_timeout(cfg.timeout).ok();
    result.total_ms = millis(first_run.elapsed());
    match outcome {
        None => result.exit = RunExit::Timeout,
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
    }
    let mut console = lock(&shared.console);
    if let Some(line) = console.lines.flush() {
        console.line(&line);
    }
    result.guest = std::mem::take(&mut console.guest);
    result.boot_to_init_ms = console.init_at.map(|t| millis(t - first_run));
    drop(console);
    result.userspace_calls = name_calls(shared.calls.iter().map(|c| std::mem::take(&mut *lock(c))));
    result
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A lock whose holder panicked is used as it stands (every change under these locks
/// leaves the state whole).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the vCPU threads share.
#[derive(Debug)]
struct Shared {
    vm: VmFd,
    memory: &'static GuestMemoryMmap,
    console: Mutex<Console>,
    /// Calls answered in userspace, per vCPU (each thread counts its own), by function id.
    calls: Vec<Mutex<BTreeMap<FunctionId, u64>>>,
    /// Each vCPU's KVM_ARM_VCPU_INIT argument (for the CPU_ON reset).
    inits: Vec<kvm_vcpu_init>,
    /// Each vCPU's start channel (armfw mode).
    starts: Vec<Sender<VcpuStart>>,
    /// The vGIC: kept open for the VM's lifetime.
    _gic: DeviceFd,
}

/// The 16550 and what its output has said so far.
#[derive(Debug)]
struct Console {
    uart: Uart16550,
    lines: LineAssembler,
    irq_level: bool,
    prefix: String,
    guest: Vec<(String, String)>,
    init_at: Option<Instant>,
}

impl Console {
    fn line(&mut self, line: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}{line}", self.prefix);
        if let Some((key, value)) = parse_guest_line(line) {
            if key == INIT_KEY && self.init_at.is_none() {
                self.init_at = Some(Instant::now());
            }
            self.guest.push((key, value));
        }
    }
}

/// What ends a vCPU thread.
#[derive(Debug)]
enum Outcome {
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

/// The shared part, the vCPU fds, their start channels and, in armfw mode, each vCPU's share
/// of the engine.
type Parts = (
    Shared,
    Vec<VcpuFd>,
    Vec<Receiver<VcpuStart>>,
    Option<Vec<VcpuServer>>,
);

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
    let gic = create_gic(&vm)?;
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
            server
                .install(&vm)
                .map_err(ctx("installing the SMCCC filter"))?;
            // One share per vCPU thread: no lock around the whole engine (see
            // armfw::firmware::shared for its locks).
            Some(server.share().1)
        }
    };
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..cfg.vcpus).map(|_| mpsc::channel()).unzip();
    let shared = Shared {
        vm,
        memory,
        console: Mutex::new(Console {
            uart: Uart16550::new(),
            lines: LineAssembler::new(),
            irq_level: false,
            prefix: cfg.prefix.clone(),
            guest: Vec::new(),
            init_at: None,
        }),
        calls: (0..cfg.vcpus)
            .map(|_| Mutex::new(BTreeMap::new()))
            .collect(),
        inits,
        starts: senders,
        _gic: gic,
    };
    Ok((shared, vcpus, receivers, servers))
}

/// KVM's in-kernel GICv3: distributor and redistributors where the device tree says,
/// [`GIC_NR_IRQS`] interrupts, initialised (all vCPUs exist by now).
fn create_gic(vm: &VmFd) -> Result<DeviceFd, VmmError> {
    let mut device = kvm_create_device {
        type_: kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V3,
        fd: 0,
        flags: 0,
    };
    let gic = vm
        .create_device(&mut device)
        .map_err(ctx("KVM_CREATE_DEVICE(VGIC_V3)"))?;
    let dist: u64 = GIC_DIST_BASE;
    let redist: u64 = GIC_REDIST_BASE;
    let nr_irqs: u32 = GIC_NR_IRQS;
    let attrs = [
        (
            KVM_DEV_ARM_VGIC_GRP_ADDR,
            u64::from(KVM_VGIC_V3_ADDR_TYPE_DIST),
            &dist as *const u64 as u64,
            "vGIC distributor address",
        ),
        (
            KVM_DEV_ARM_VGIC_GRP_ADDR,
            u64::from(KVM_VGIC_V3_ADDR_TYPE_REDIST),
            &redist as *const u64 as u64,
            "vGIC redistributor address",
        ),
        (
            KVM_DEV_ARM_VGIC_GRP_NR_IRQS,
            0,
            &nr_irqs as *const u32 as u64,
            "vGIC interrupt count",
        ),
        (
            KVM_DEV_ARM_VGIC_GRP_CTRL,
            u64::from(KVM_DEV_ARM_VGIC_CTRL_INIT),
            0,
            "vGIC init",
        ),
    ];
    for (group, attr, addr, what) in attrs {
        gic.set_device_attr(&kvm_device_attr {
            group,
            attr,
            addr,
            flags: 0,
        })
        .map_err(|e| VmmError(format!("KVM_SET_DEVICE_ATTR ({what}): {e}")))?;
    }
    Ok(gic)
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

fn vcpu_thread(
    i: usize,
    mut fd: VcpuFd,
    mut server: Option<VcpuServer>,
    shared: &Shared,
    start: &Receiver<VcpuStart>,
    outcome: &Sender<Outcome>,
) {
    let result = vcpu_loop(i, &mut fd, server.as_mut(), shared, start);
    let _ = outcome.send(result);
    // Keep the vCPU as it is: the process ends after the first outcome.
    std::mem::forget(fd);
}

fn vcpu_loop(
    i: usize,
    fd: &mut VcpuFd,
    mut server: Option<&mut VcpuServer>,
    shared: &Shared,
    start: &Receiver<VcpuStart>,
) -> Outcome {
    let failed = |e: VmmError| Outcome::Failed {
        vcpu: i,
        error: e.0,
    };
    if let Some(server) = server.as_deref_mut() {
        if i > 0 {
            // Off until a CPU_ON.
            if let Err(e) = wait_for_start(i, fd, shared, start) {
                return failed(e);
            }
        }
        if let Err(e) = server.vcpu_run() {
            return failed(VmmError(format!("firmware: vcpu_run: {e}")));
        }
    }
    loop {
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
                return Outcome::Event {
                    kind,
                    data,
                    vcpu: i,
                };
            }
            Step::Fail(error) => return Outcome::Failed { vcpu: i, error },
            Step::Hypercall { nr, flags } => {
                match hypercall(i, fd, server.as_deref_mut(), shared, start, nr, flags) {
                    Ok(None) => {}
                    Ok(Some(outcome)) => return outcome,
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
) -> Result<Option<Outcome>, VmmError> {
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
        Action::CpuOff => wait_for_start(i, fd, shared, start)?,
        Action::WaitForInterrupt => set_mp_state(fd, KVM_MP_STATE_SUSPENDED)?,
        Action::SystemEvent(event) => {
            return Ok(Some(Outcome::Event {
                kind: event.kind,
                data: event.data,
                vcpu: i,
            }));
        }
        Action::Forward(_) => set_reg(fd, regs::x(0), NOT_SUPPORTED)?,
        other => return Err(VmmError(format!("armfw-vmm does not carry out {other:?}"))),
    }
    Ok(None)
}

/// A vCPU that is off: waits for its CPU_ON, then resets itself as KVM does.
fn wait_for_start(
    i: usize,
    fd: &VcpuFd,
    shared: &Shared,
    start: &Receiver<VcpuStart>,
) -> Result<(), VmmError> {
    let s = start
        .recv()
        .map_err(|_| VmmError("the start channel closed".into()))?;
    fd.vcpu_init(&shared.inits[i])
        .map_err(ctx("KVM_ARM_VCPU_INIT (CPU_ON reset)"))?;
    set_mp_state(fd, KVM_MP_STATE_RUNNABLE)?;
    set_reg(fd, regs::PC, s.entry)?;
    set_reg(fd, regs::x(0), s.context_id)
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
