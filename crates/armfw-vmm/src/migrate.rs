// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Save and restore of a running VM (Linux/aarch64): the whole VM in one bundle
//! ([`armfw::bundle`]), taken from paused vCPUs, and a restore that reads and checks the
//! whole bundle and asks armfw's plan for this host before it creates anything.
//!
//! What a bundle holds, and where each part comes from:
//!
//! | part | saved through | restored through |
//! | --- | --- | --- |
//! | every vCPU register KVM lists, MP states, SMCCC filter | the core's one sequence ([`armfw::migrate::sequence`]) over [`VcpuSet`] | the same sequence, under armfw's whole-VM plan ([`armfw::compat::whole::plan`]) |
//! | the vGICv3 | [`armfw_kvm::vgic::save`] | [`armfw_kvm::vgic::restore`], after the registers |
//! | guest RAM | its non-zero pages | written before any vCPU exists |
//! | the console (16550A, its line level, a line begun) | [`VmmDevices`] | the same |
//! | armfw's firmware engine, when it serves the guest | [`armfw::firmware::SharedFirmware::save`] | [`armfw::Firmware::restore`] on this host's profile |
//!
//! The counters travel as TIMER_CNT/PTIMER_CNT: writing them back moves the VM's counter
//! offset, so the guest's virtual time goes on from where it was paused.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use armfw::abi::CpuFeatures;
use armfw::bundle::{Bundle, DEVICES_FORMAT, Devices, RamRange, nonzero_runs};
use armfw::firmware::MpState;
use armfw::migrate::RestorePolicy;
use armfw::migrate::sequence::{self, MachineSetup};
use armfw::snapshot::Source;
use armfw_kvm::migrate::VcpuSet;
use armfw_kvm::serve::{FirmwareServer, VcpuServer};
use armfw_kvm::vgic;
use kvm_ioctls::VcpuFd;
use vm_memory::{Bytes, GuestAddress};

use crate::console::VmmDevices;
use crate::layout::{GIC_DIST_BASE, GIC_NR_IRQS, GIC_REDIST_BASE, MAX_VCPUS, RAM_BASE};
use crate::report::{FirmwareMode, Migration, RunExit, RunResult};
use crate::vmm::{Parts, Shared, VmConfig, VmmError, ctx, lock};

/// The profile name a saved VM names its host by.
fn source(cfg: &VmConfig) -> Source {
    let kernel = armfw_kvm::kernel_release().unwrap_or_default();
    // The name `armfw probe` gives this host.
    let short =
        armfw_kvm::probe::short_version(&kernel, armfw_kvm::probe::kernel_version().as_deref());
    Source {
        profile: format!("linux-{short}-{}", cfg.cpu.as_deref().unwrap_or("unknown")),
        kernel,
    }
}

/// Saves the paused VM (`vcpus`, by index, with their shares of the engine in armfw mode)
/// as a bundle at `path`.
pub(crate) fn save(
    shared: &Shared,
    cfg: &VmConfig,
    vcpus: Vec<(VcpuFd, Option<VcpuServer>)>,
    path: &Path,
) -> Result<Migration, VmmError> {
    let (fds, servers): (Vec<_>, Vec<_>) = vcpus.into_iter().unzip();
    let set = VcpuSet::of(&shared.vm, fds, shared.inits.clone());
    let machine = MachineSetup {
        features: CpuFeatures::NONE,
        sve_vls: None,
        writable_imp_id_regs: shared.writable_imp_id_regs,
        counter_offset: None,
    };
    let snapshot =
        armfw_kvm::migrate::save_vcpus(&set, source(cfg), machine, shared.smccc_filter.clone())
            .map_err(ctx("the vCPUs"))?;
    let mpidrs = set.mpidrs().map_err(ctx("MPIDR_EL1"))?;
    let gic = vgic::save(
        &shared.gic,
        GIC_DIST_BASE,
        GIC_REDIST_BASE,
        GIC_NR_IRQS,
        &mpidrs,
    )
    .map_err(ctx("the vGIC"))?;
    let (engine, implementations) = match servers.first().and_then(Option::as_ref) {
        Some(s) => (
            Some(s.vm().save().map_err(ctx("the firmware engine"))?.to_json()),
            s.vm()
                .to_firmware()
                .implementations()
                .iter()
                .map(|i| [i.midr, i.revidr, i.aidr])
                .collect(),
        ),
        None => (None, Vec::new()),
    };
    let vmm = VmmDevices {
        console: lock(&shared.console).state(),
    };
    let size = shared.ram_size;
    let mut ram = vec![0u8; usize::try_from(size).map_err(ctx("RAM size"))?];
    shared
        .memory
        .read_slice(&mut ram, GuestAddress(RAM_BASE))
        .map_err(ctx("reading guest RAM"))?;
    let devices = Devices {
        format: DEVICES_FORMAT.into(),
        ram: vec![RamRange {
            base: RAM_BASE,
            size,
        }],
        gic,
        engine,
        implementations,
        vmm: serde_json::to_value(&vmm).map_err(ctx("the console"))?,
    };
    let runs = nonzero_runs(RAM_BASE, &ram);
    let bytes = Bundle::encode(&snapshot, &devices, &runs).map_err(ctx("the bundle"))?;
    write_whole(path, &bytes)?;
    Ok(Migration {
        bundle_bytes: bytes.len() as u64,
        memory_bytes: runs.iter().map(|r| r.data.len() as u64).sum(),
        implementations: devices.implementations.len(),
        ..Migration::default()
    })
}

/// Writes `bytes` to `path`: a character device (a virtio-serial port) directly, a file
/// through a temporary name and a rename, so that no half-written bundle is ever there.
fn write_whole(path: &Path, bytes: &[u8]) -> Result<(), VmmError> {
    use std::os::unix::fs::FileTypeExt;
    let device = std::fs::metadata(path).is_ok_and(|m| m.file_type().is_char_device());
    if device {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(ctx("opening the bundle's port"))?;
        f.write_all(bytes).map_err(ctx("writing the bundle"))?;
        return f.flush().map_err(ctx("writing the bundle"));
    }
    let part = path.with_extension("part");
    std::fs::write(&part, bytes).map_err(ctx("writing the bundle"))?;
    std::fs::rename(&part, path).map_err(ctx("writing the bundle"))
}

/// The first reasons of a refusal, and how many more there are (a whole-VM plan refuses
/// each vCPU's registers one by one).
fn summary(reasons: &[String]) -> String {
    const SHOWN: usize = 3;
    let mut s = reasons[..reasons.len().min(SHOWN)].join("; ");
    if reasons.len() > SHOWN {
        s.push_str(&format!("; and {} more", reasons.len() - SHOWN));
    }
    s
}

/// Reads and checks the bundle at `path`, asks armfw's plan for this host and, if it
/// restores, creates the VM and restores it: a VM ready to run. A bundle that cannot be read
/// and a refused plan create nothing; a refused plan sets `result.exit` to
/// [`RunExit::Refused`].
pub(crate) fn restore(
    cfg: &VmConfig,
    path: &Path,
    result: &mut RunResult,
) -> Result<Parts, VmmError> {
    let t0 = Instant::now();
    let bytes = std::fs::read(path).map_err(ctx("reading the bundle"))?;
    let bundle = Bundle::parse(&bytes).map_err(ctx("the bundle"))?;
    let vmm: VmmDevices = armfw::json::from_value(&bundle.devices.vmm)
        .map_err(|e| VmmError(format!("the bundle: devices: vmm.{e}")))?;
    let g = &bundle.devices.gic;
    let n = bundle.snapshot.vcpus().len();
    let ram = bundle.devices.ram.as_slice();
    let layout_ok = g.dist_base == GIC_DIST_BASE
        && g.redist_base == GIC_REDIST_BASE
        && g.nr_irqs == GIC_NR_IRQS
        && ram.len() == 1
        && ram[0].base == RAM_BASE
        && (1..=MAX_VCPUS).contains(&n);
    if !layout_ok {
        return Err(VmmError(format!(
            "the bundle: a machine this VMM does not build ({n} vCPUs, vGIC at {:#x}/{:#x} with {} interrupts, RAM {:?})",
            g.dist_base, g.redist_base, g.nr_irqs, ram
        )));
    }
    result.vcpus = n;
    result.firmware = if bundle.engine.is_some() {
        FirmwareMode::Armfw
    } else {
        FirmwareMode::Kernel
    };
    let mut migration = Migration {
        bundle_bytes: bytes.len() as u64,
        memory_bytes: bundle.memory_bytes(),
        ..Migration::default()
    };

    // armfw's prediction for this host, before anything is created.
    let profile =
        armfw_kvm::probe::probe(cfg.cpu.as_deref(), None).map_err(ctx("probing the host"))?;
    let plan = armfw::compat::whole::plan(&bundle.snapshot, &profile);
    let mut refused = plan.refused.clone();
    if let Some(engine) = &bundle.engine {
        let report = armfw::compat::check(engine, &profile);
        refused.extend(
            report
                .findings()
                .filter(|f| f.is_refused())
                .map(|f| format!("engine: {}: {}", f.subject, f.rule.name())),
        );
    }
    if !refused.is_empty() || !plan.restores() {
        let why = if refused.is_empty() {
            plan.result
                .as_ref()
                .and_then(|r| r.as_ref().err())
                .map_or("no plan".into(), armfw::compat::whole::stop_line)
        } else {
            summary(&refused)
        };
        migration.prediction = Some(format!("refused: {why}"));
        migration.restore_ms = Some(crate::vmm::millis(t0.elapsed()));
        result.migration = Some(migration);
        result.exit = RunExit::Refused;
        return Err(VmmError(format!("armfw refuses the move: {why}")));
    }
    migration.prediction = Some("ok".into());

    let size = ram[0].size;
    let (vm, memory) = crate::vmm::new_vm(size)?;
    for run in &bundle.memory {
        memory
            .write_slice(run.data, GuestAddress(run.gpa))
            .map_err(ctx("loading guest RAM"))?;
    }
    let mut set = VcpuSet::new(&vm, Some((g.dist_base, g.redist_base, g.nr_irqs)));
    let restored = sequence::restore_with(&mut set, &bundle.snapshot, plan.writes());
    if let Some(e) = set.take_error() {
        return Err(VmmError(format!("restoring the vCPUs: {e}")));
    }
    restored.map_err(|stop| {
        VmmError(format!(
            "restoring the vCPUs: {}",
            armfw::compat::whole::stop_line(&stop)
        ))
    })?;
    let mpidrs = set.mpidrs().map_err(ctx("MPIDR_EL1"))?;
    let (vcpus, inits, gic) = set.into_parts();
    let gic = gic.ok_or_else(|| VmmError("the restore created no vGIC".into()))?;
    vgic::restore(&gic, g, &mpidrs).map_err(ctx("restoring the vGIC"))?;
    // Read back: KVM keeps what it was given, or the restore fails saying what it changed
    // (the new VM has not run; it goes with the process).
    let back = vgic::save(&gic, g.dist_base, g.redist_base, g.nr_irqs, &mpidrs)
        .map_err(ctx("reading the vGIC back"))?;
    let diff = vgic::differences(g, &back);
    if !diff.is_empty() {
        return Err(VmmError(format!(
            "restoring the vGIC: KVM changed what it was given: {}",
            summary(&diff)
        )));
    }

    let (servers, off) = match &bundle.engine {
        None => (None, vec![false; n]),
        Some(engine) => {
            let mut server = FirmwareServer::new(&profile);
            // Before the restore, which needs a VM that has not run, as this call does.
            server
                .firmware_mut()
                .set_implementations(&bundle.implementations())
                .map_err(ctx("the engine's implementations"))?;
            server
                .firmware_mut()
                .restore(engine, RestorePolicy::Armfw)
                .map_err(ctx("restoring the firmware engine"))?;
            migration.implementations = server.firmware().implementations().len();
            let off = (0..n)
                .map(|i| server.firmware().mp_state(i).ok() == Some(MpState::Stopped))
                .collect();
            (Some(server.share().1), off)
        }
    };
    let (shared, starts) = Shared::new(
        cfg,
        vm,
        (memory, size),
        inits,
        gic,
        bundle.snapshot.vm().smccc_filter.clone(),
        bundle
            .snapshot
            .machine()
            .is_some_and(|m| m.writable_imp_id_regs),
    );
    lock(&shared.console).resume(&vmm.console);
    migration.restore_ms = Some(crate::vmm::millis(t0.elapsed()));
    result.migration = Some(migration);
    Ok(Parts {
        shared,
        vcpus,
        starts,
        servers,
        off,
    })
}

/// A pool's baseline as this VMM creates a VM with it: the firmware's, the CPU's, and the
/// CPU recipe for this host.
pub(crate) struct PoolBaseline {
    /// PSCI version and bitmaps.
    pub(crate) firmware: armfw::compat::Baseline,
    /// The pool's CPU.
    pub(crate) cpu: armfw::compat::CpuBaseline,
    /// What this host writes to present it.
    pub(crate) recipe: armfw::compat::CpuRecipe,
}

/// The baseline of the pool whose profiles are the `*.json` files in `dir`, for this host
/// (named as [`source`] names it, which must be one of them and covered by the pool's CPU).
pub(crate) fn pool_baseline(cfg: &VmConfig, dir: &Path) -> Result<PoolBaseline, VmmError> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(ctx("reading the pool"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut pool = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).map_err(ctx("reading a pool profile"))?;
        let p = armfw::Profile::from_json(&text)
            .map_err(|e| VmmError(format!("{}: {e}", f.display())))?;
        pool.push(p);
    }
    let firmware = armfw::compat::baseline(&pool).map_err(ctx("the pool's baseline"))?;
    let cpu = armfw::compat::cpu_baseline(&pool, Some(CpuFeatures::NONE))
        .map_err(|e| VmmError(format!("the pool's CPU baseline: {}", e.describe(&pool))))?;
    let name = source(cfg).profile;
    let i = pool
        .iter()
        .position(|p| p.name() == name)
        .ok_or_else(|| VmmError(format!("this host ({name}) is not in the pool")))?;
    if !cpu.covers(i) {
        return Err(VmmError(format!(
            "the pool's CPU baseline leaves this host ({name}) out"
        )));
    }
    let recipe = cpu.recipe(&pool[i]);
    Ok(PoolBaseline {
        firmware,
        cpu,
        recipe,
    })
}

/// Writes the pool's CPU recipe and firmware baseline into the new VM's vCPUs (before their
/// first run) through the core's one sequence.
pub(crate) fn apply_pool_baseline(
    vm: &kvm_ioctls::VmFd,
    vcpus: Vec<VcpuFd>,
    inits: Vec<kvm_bindings::kvm_vcpu_init>,
    b: &PoolBaseline,
) -> Result<(Vec<VcpuFd>, Vec<kvm_bindings::kvm_vcpu_init>), VmmError> {
    let mut set = VcpuSet::of(vm, vcpus, inits);
    sequence::apply_baseline(&mut set, true, Some(&b.firmware), Some(&b.recipe))
        .map_err(ctx("the pool baseline"))?;
    let (vcpus, inits, _) = set.into_parts();
    Ok((vcpus, inits))
}

/// The same baseline in armfw's engine, which answers the guest's calls (its vCPUs created
/// and initialised): the firmware baseline, and on a pool whose hosts all have the errata
/// hypercalls (6.15+), the pool's implementations for DISCOVER_IMPL_VER/CPUS.
pub(crate) fn engine_baseline(fw: &mut armfw::Firmware, b: &PoolBaseline) -> Result<(), VmmError> {
    b.firmware
        .apply(fw)
        .map_err(ctx("the pool baseline in the engine"))?;
    if b.cpu.discover_impl {
        fw.set_implementations(&b.cpu.implementations)
            .map_err(ctx("the pool's implementations"))?;
        // VENDOR_HYP_BMAP_2 bits 0 and 1: DISCOVER_IMPL_VER and DISCOVER_IMPL_CPUS.
        let id = armfw::abi::FwReg::VendorHypBmap2.id();
        for vcpu in 0..fw.vcpu_count() {
            fw.set_one_reg(vcpu, id, 0x3)
                .map_err(ctx("VENDOR_HYP_BMAP_2 in the engine"))?;
        }
    }
    Ok(())
}
