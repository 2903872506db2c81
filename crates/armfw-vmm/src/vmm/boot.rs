// SPDX-License-Identifier: Apache-2.0 OR MIT
//! A new VM booted from a kernel: its RAM, the Image, initramfs and device tree in it, the
//! vCPUs and the vGIC, a pool baseline if asked for, and armfw's engine in armfw mode.

use armfw::firmware::VcpuFeatures;
use armfw::snapshot::FilterRange;
use armfw_kvm::regs;
use armfw_kvm::serve::FirmwareServer;
use kvm_bindings::{KVM_ARM_VCPU_POWER_OFF, KVM_ARM_VCPU_PSCI_0_2, kvm_vcpu_init};
use kvm_ioctls::{Kvm, VmFd};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::vcpu::set_reg;
use super::{Parts, Shared, VmConfig, VmmError, ctx};
use crate::fdt::{self, FdtConfig};
use crate::image::ImageHeader;
use crate::layout::{GIC_DIST_BASE, GIC_NR_IRQS, GIC_REDIST_BASE, Layout, MAX_VCPUS, RAM_BASE};
use crate::report::FirmwareMode;

/// Everything before the first KVM_RUN.
pub(super) fn setup(cfg: &VmConfig) -> Result<Parts, VmmError> {
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
