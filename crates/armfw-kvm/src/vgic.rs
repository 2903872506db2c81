// SPDX-License-Identifier: Apache-2.0 OR MIT
//! KVM's in-kernel GICv3 for a VMM: create it, save its state, restore it into a new VM
//! (Linux `Documentation/virt/kvm/devices/arm-vgic-v3.rst`).
//!
//! The state is what a guest without an ITS can change (no LPIs): the distributor's
//! registers for the SPIs, each vCPU's redistributor (its SGIs and PPIs) and CPU interface
//! (the ICC_* system registers), and the line levels of the level-triggered SPIs. The tables
//! below list them in the order a restore writes them: the distributor's control first (so
//! affinity routing is on before the routes are written), the enables last, and every
//! set/clear pair as "clear all, then set the saved bits", so that the destination ends
//! with exactly the saved bits whatever it started with.
//!
//! Distributor and redistributor registers are 32-bit words through KVM's uaccess (a 64-bit
//! register is two words); the CPU interface's are 64-bit. A register is named by its frame
//! offset and, for the per-vCPU groups, the vCPU's affinity (MPIDR_EL1's Aff3..Aff0 in bits
//! 63:32 of the attribute).

use armfw::bundle::{GicReg, GicState, GicSysReg};
use kvm_bindings::{
    KVM_DEV_ARM_VGIC_CTRL_INIT, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS,
    KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_GRP_DIST_REGS, KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO,
    KVM_DEV_ARM_VGIC_GRP_NR_IRQS, KVM_DEV_ARM_VGIC_GRP_REDIST_REGS,
    KVM_DEV_ARM_VGIC_LINE_LEVEL_INFO_SHIFT, KVM_VGIC_V3_ADDR_TYPE_DIST,
    KVM_VGIC_V3_ADDR_TYPE_REDIST, VGIC_LEVEL_INFO_LINE_LEVEL, kvm_create_device, kvm_device_attr,
    kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V3,
};
use kvm_ioctls::{DeviceFd, VmFd};

use crate::Error;
use crate::sys::errno;

/// The first SPI.
const FIRST_SPI: u32 = 32;
/// The redistributor's SGI frame, after its RD frame.
const SGI_FRAME: u32 = 0x1_0000;

/// A distributor register that holds `bits` bits per interrupt, at `offset`; with a clear
/// register at `clear` (a set/clear pair), or none.
struct PerIrq {
    offset: u32,
    bits: u32,
    clear: Option<u32>,
}

const fn per_irq(offset: u32, bits: u32, clear: Option<u32>) -> PerIrq {
    PerIrq {
        offset,
        bits,
        clear,
    }
}

/// GICD_CTLR.
const GICD_CTLR: u32 = 0x0;
/// The distributor's per-interrupt registers, in restore order: IGROUPR, IROUTER, ICFGR,
/// (the line levels here), ISPENDR, ISACTIVER, IPRIORITYR, ISENABLER.
const DIST_BEFORE_LEVELS: [PerIrq; 3] = [
    per_irq(0x0080, 1, None),
    per_irq(0x6000, 64, None),
    per_irq(0x0c00, 2, None),
];
const DIST_AFTER_LEVELS: [PerIrq; 4] = [
    per_irq(0x0200, 1, Some(0x0280)),
    per_irq(0x0300, 1, Some(0x0380)),
    per_irq(0x0400, 8, None),
    per_irq(0x0100, 1, Some(0x0180)),
];

/// A redistributor word at `offset` (RD frame, or [`SGI_FRAME`] + offset), with its clear
/// register.
const fn rd(offset: u32, clear: Option<u32>) -> (u32, Option<u32>) {
    (offset, clear)
}

/// Each vCPU's redistributor words, in restore order: PROPBASER and PENDBASER (two words
/// each) before GICR_CTLR, then the SGI frame: IGROUPR0, ICFGR0/1, IPRIORITYR0..7, ISPENDR0,
/// ISACTIVER0, ISENABLER0.
const REDIST: [(u32, Option<u32>); 17] = [
    rd(0x0070, None),
    rd(0x0074, None),
    rd(0x0078, None),
    rd(0x007c, None),
    rd(0x0000, None),
    rd(SGI_FRAME + 0x0080, None),
    rd(SGI_FRAME + 0x0c00, None),
    rd(SGI_FRAME + 0x0c04, None),
    rd(SGI_FRAME + 0x0400, None),
    rd(SGI_FRAME + 0x0404, None),
    rd(SGI_FRAME + 0x0408, None),
    rd(SGI_FRAME + 0x040c, None),
    rd(SGI_FRAME + 0x0410, None),
    rd(SGI_FRAME + 0x0414, None),
    rd(SGI_FRAME + 0x0418, None),
    rd(SGI_FRAME + 0x041c, None),
    rd(SGI_FRAME + 0x0200, Some(SGI_FRAME + 0x0280)),
];
/// Written after [`REDIST`]: ISACTIVER0, then ISENABLER0 last.
const REDIST_LAST: [(u32, Option<u32>); 2] = [
    rd(SGI_FRAME + 0x0300, Some(SGI_FRAME + 0x0380)),
    rd(SGI_FRAME + 0x0100, Some(SGI_FRAME + 0x0180)),
];

/// A CPU-interface register's attribute: op0, op1, CRn, CRm, op2 as in MRS.
const fn icc(op0: u16, op1: u16, crn: u16, crm: u16, op2: u16) -> u16 {
    (op0 << 14) | (op1 << 11) | (crn << 7) | (crm << 3) | op2
}
const ICC_SRE_EL1: u16 = icc(3, 0, 12, 12, 5);
const ICC_CTLR_EL1: u16 = icc(3, 0, 12, 12, 4);
const ICC_PMR_EL1: u16 = icc(3, 0, 4, 6, 0);
const ICC_BPR0_EL1: u16 = icc(3, 0, 12, 8, 3);
const ICC_BPR1_EL1: u16 = icc(3, 0, 12, 12, 3);
const ICC_IGRPEN0_EL1: u16 = icc(3, 0, 12, 12, 6);
const ICC_IGRPEN1_EL1: u16 = icc(3, 0, 12, 12, 7);
const fn icc_ap0r(n: u16) -> u16 {
    icc(3, 0, 12, 8, 4 | n)
}
const fn icc_ap1r(n: u16) -> u16 {
    icc(3, 0, 12, 9, n)
}

/// How many ICC_AP0Rn_EL1/AP1Rn_EL1 the CPU interface has, from ICC_CTLR_EL1.PRIbits
/// (bits 10:8, the priority bits less one): one for 5 bits, two for 6, four for 7.
fn active_priority_regs(icc_ctlr: u64) -> u16 {
    match (icc_ctlr >> 8) & 0x7 {
        0..=4 => 1,
        5 => 2,
        _ => 4,
    }
}

/// The per-vCPU part of an attribute: MPIDR_EL1's Aff3 (bits 39:32) and Aff2..Aff0 (23:0)
/// as Aff3..Aff0 in bits 63:32.
pub fn affinity_attr(mpidr: u64) -> u64 {
    let aff = (((mpidr >> 32) & 0xff) << 24) | (mpidr & 0xff_ffff);
    aff << 32
}

/// The distributor words of a per-interrupt register for the SPIs of `nr_irqs` interrupts.
fn spi_words(r: &PerIrq, nr_irqs: u32) -> impl Iterator<Item = u32> + '_ {
    let start = r.offset + FIRST_SPI * r.bits / 8;
    let end = r.offset + nr_irqs * r.bits / 8;
    (start..end).step_by(4)
}

/// Creates KVM's GICv3 on `vm` (every vCPU must exist): the distributor at `dist_base`, the
/// redistributors from `redist_base`, `nr_irqs` interrupts, initialised.
pub fn create(
    vm: &VmFd,
    dist_base: u64,
    redist_base: u64,
    nr_irqs: u32,
) -> Result<DeviceFd, Error> {
    let mut device = kvm_create_device {
        type_: kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V3,
        fd: 0,
        flags: 0,
    };
    let gic = vm.create_device(&mut device).map_err(|e| Error::Sys {
        op: "KVM_CREATE_DEVICE(VGIC_V3)",
        errno: errno(e),
    })?;
    let attrs = [
        (
            KVM_DEV_ARM_VGIC_GRP_ADDR,
            u64::from(KVM_VGIC_V3_ADDR_TYPE_DIST),
            &dist_base as *const u64 as u64,
            "KVM_SET_DEVICE_ATTR(vGIC distributor address)",
        ),
        (
            KVM_DEV_ARM_VGIC_GRP_ADDR,
            u64::from(KVM_VGIC_V3_ADDR_TYPE_REDIST),
            &redist_base as *const u64 as u64,
            "KVM_SET_DEVICE_ATTR(vGIC redistributor address)",
        ),
        (
            KVM_DEV_ARM_VGIC_GRP_NR_IRQS,
            0,
            &nr_irqs as *const u32 as u64,
            "KVM_SET_DEVICE_ATTR(vGIC interrupt count)",
        ),
        (
            KVM_DEV_ARM_VGIC_GRP_CTRL,
            u64::from(KVM_DEV_ARM_VGIC_CTRL_INIT),
            0,
            "KVM_SET_DEVICE_ATTR(vGIC init)",
        ),
    ];
    for (group, attr, addr, op) in attrs {
        gic.set_device_attr(&kvm_device_attr {
            group,
            attr,
            addr,
            flags: 0,
        })
        .map_err(|e| Error::Sys {
            op,
            errno: errno(e),
        })?;
    }
    Ok(gic)
}

/// A register value as KVM's vGIC attributes carry it: `u32` for the distributor,
/// redistributor and line-level groups, `u64` for the CPU interface.
trait Word: Copy + Default {}
impl Word for u32 {}
impl Word for u64 {}

/// The width KVM reads and writes at `addr` for `group` (`vgic_v3_attr_regs_access()`).
const fn width(group: u32) -> usize {
    if group == KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS {
        8
    } else {
        4
    }
}

/// KVM_GET_DEVICE_ATTR of one register, as a `T` of the group's width.
fn get<T: Word>(gic: &DeviceFd, group: u32, attr: u64) -> Result<T, Error> {
    if std::mem::size_of::<T>() != width(group) {
        return Err(vgic_error(
            group,
            attr,
            false,
            vmm_sys_util::errno::Error::new(libc::EINVAL),
        ));
    }
    let mut value = T::default();
    let mut a = kvm_device_attr {
        group,
        attr,
        addr: &raw mut value as u64,
        flags: 0,
    };
    // SAFETY: one KVM_GET_DEVICE_ATTR ioctl. KVM writes `width(group)` bytes to `addr`, which
    // points to `value`, of exactly that size (checked above), alive and writable for the
    // whole call.
    unsafe { gic.get_device_attr(&mut a) }.map_err(|e| vgic_error(group, attr, false, e))?;
    Ok(value)
}

/// KVM_SET_DEVICE_ATTR of one register from a `T` of the group's width.
fn set<T: Word>(gic: &DeviceFd, group: u32, attr: u64, value: T) -> Result<(), Error> {
    if std::mem::size_of::<T>() != width(group) {
        return Err(vgic_error(
            group,
            attr,
            true,
            vmm_sys_util::errno::Error::new(libc::EINVAL),
        ));
    }
    gic.set_device_attr(&kvm_device_attr {
        group,
        attr,
        addr: &raw const value as u64,
        flags: 0,
    })
    .map_err(|e| vgic_error(group, attr, true, e))
}

fn vgic_error(group: u32, attr: u64, write: bool, e: kvm_ioctls::Error) -> Error {
    Error::Vgic {
        group: match group {
            KVM_DEV_ARM_VGIC_GRP_DIST_REGS => "distributor",
            KVM_DEV_ARM_VGIC_GRP_REDIST_REGS => "redistributor",
            KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS => "CPU interface",
            KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO => "line level",
            _ => "vGIC",
        },
        attr,
        write,
        errno: errno(e),
    }
}

fn level_attr(intid: u32) -> u64 {
    (u64::from(VGIC_LEVEL_INFO_LINE_LEVEL) << KVM_DEV_ARM_VGIC_LINE_LEVEL_INFO_SHIFT)
        | u64::from(intid)
}

/// The state of `gic` (created with `dist_base`, `redist_base` and `nr_irqs`), whose vCPUs
/// have the MPIDR_EL1 values `mpidrs`, by index. Every vCPU must be out of KVM_RUN.
pub fn save(
    gic: &DeviceFd,
    dist_base: u64,
    redist_base: u64,
    nr_irqs: u32,
    mpidrs: &[u64],
) -> Result<GicState, Error> {
    let d = KVM_DEV_ARM_VGIC_GRP_DIST_REGS;
    let mut dist = vec![GicReg(GICD_CTLR, get::<u32>(gic, d, u64::from(GICD_CTLR))?)];
    for r in DIST_BEFORE_LEVELS.iter().chain(&DIST_AFTER_LEVELS) {
        for w in spi_words(r, nr_irqs) {
            dist.push(GicReg(w, get::<u32>(gic, d, u64::from(w))?));
        }
    }
    let vcpu0 = mpidrs.first().map_or(0, |&m| affinity_attr(m));
    let mut line_levels = Vec::new();
    for intid in (FIRST_SPI..nr_irqs).step_by(32) {
        let v = get::<u32>(
            gic,
            KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO,
            vcpu0 | level_attr(intid),
        )?;
        line_levels.push(GicReg(intid, v));
    }
    let mut redist = Vec::with_capacity(mpidrs.len());
    let mut cpu = Vec::with_capacity(mpidrs.len());
    for &mpidr in mpidrs {
        let aff = affinity_attr(mpidr);
        let mut words = Vec::new();
        for &(off, _) in REDIST.iter().chain(&REDIST_LAST) {
            let v = get::<u32>(gic, KVM_DEV_ARM_VGIC_GRP_REDIST_REGS, aff | u64::from(off))?;
            words.push(GicReg(off, v));
        }
        redist.push(words);
        let s = KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS;
        let ctlr = get::<u64>(gic, s, aff | u64::from(ICC_CTLR_EL1))?;
        let n = active_priority_regs(ctlr);
        let mut regs = Vec::new();
        let order = [
            ICC_SRE_EL1,
            ICC_CTLR_EL1,
            ICC_PMR_EL1,
            ICC_BPR0_EL1,
            ICC_BPR1_EL1,
        ]
        .into_iter()
        .chain((0..n).map(icc_ap0r))
        .chain((0..n).map(icc_ap1r))
        .chain([ICC_IGRPEN0_EL1, ICC_IGRPEN1_EL1]);
        for reg in order {
            regs.push(GicSysReg(reg, get::<u64>(gic, s, aff | u64::from(reg))?));
        }
        cpu.push(regs);
    }
    Ok(GicState {
        dist_base,
        redist_base,
        nr_irqs,
        dist,
        redist,
        cpu,
        line_levels,
    })
}

/// The clear register of the set register at distributor offset `w`, if it is one.
fn dist_clear(w: u32, nr_irqs: u32) -> Option<u32> {
    DIST_AFTER_LEVELS.iter().find_map(|r| {
        let clear = r.clear?;
        spi_words(r, nr_irqs)
            .any(|x| x == w)
            .then(|| clear + (w - r.offset))
    })
}

/// Writes `state` into `gic`, a GICv3 of a VM whose vCPUs (MPIDR_EL1 values `mpidrs`) have
/// their registers restored and have not run: the distributor (control, the registers
/// before the line levels, the line levels, the rest), then each vCPU's redistributor and
/// CPU interface. The first refusal ends it, naming the register.
pub fn restore(gic: &DeviceFd, state: &GicState, mpidrs: &[u64]) -> Result<(), Error> {
    let d = KVM_DEV_ARM_VGIC_GRP_DIST_REGS;
    let nr = state.nr_irqs;
    let levels_before = |w: u32| {
        DIST_AFTER_LEVELS
            .iter()
            .any(|r| spi_words(r, nr).any(|x| x == w))
    };
    let vcpu0 = mpidrs.first().map_or(0, |&m| affinity_attr(m));
    let write_dist = |r: &GicReg| -> Result<(), Error> {
        if let Some(clear) = dist_clear(r.0, nr) {
            set::<u32>(gic, d, u64::from(clear), u32::MAX)?;
        }
        set::<u32>(gic, d, u64::from(r.0), r.1)
    };
    for r in state.dist.iter().filter(|r| !levels_before(r.0)) {
        write_dist(r)?;
    }
    for l in &state.line_levels {
        set::<u32>(
            gic,
            KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO,
            vcpu0 | level_attr(l.0),
            l.1,
        )?;
    }
    for r in state.dist.iter().filter(|r| levels_before(r.0)) {
        write_dist(r)?;
    }
    for ((regs, sysregs), &mpidr) in state.redist.iter().zip(&state.cpu).zip(mpidrs) {
        let aff = affinity_attr(mpidr);
        let g = KVM_DEV_ARM_VGIC_GRP_REDIST_REGS;
        for r in regs {
            let clear = REDIST
                .iter()
                .chain(&REDIST_LAST)
                .find(|x| x.0 == r.0)
                .and_then(|x| x.1);
            if let Some(clear) = clear {
                set::<u32>(gic, g, aff | u64::from(clear), u32::MAX)?;
            }
            set::<u32>(gic, g, aff | u64::from(r.0), r.1)?;
        }
        for r in sysregs {
            set::<u64>(
                gic,
                KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS,
                aff | u64::from(r.0),
                r.1,
            )?;
        }
    }
    Ok(())
}

/// Redistributor words KVM sanitises on a write, so that they read back otherwise than
/// written: GICR_PROPBASER's and GICR_PENDBASER's low words, whose cacheability and
/// shareability fields KVM sets to what it supports (`vgic_sanitise_propbaser()`,
/// `vgic_sanitise_pendbaser()`; measured: 0 reads back as 0x180).
const SANITISED: [u32; 2] = [0x0070, 0x0078];

/// The registers of `b` that differ from `a`'s (two states of one GIC layout), other than the
/// words KVM sanitises: group, vCPU, offset or encoding, and both values.
pub fn differences(a: &GicState, b: &GicState) -> Vec<String> {
    let mut out = Vec::new();
    let mut words = |what: String, x: &[GicReg], y: &[GicReg], skip: &[u32]| {
        for (x, y) in x.iter().zip(y) {
            if x != y && !skip.contains(&x.0) {
                out.push(format!(
                    "{what} {:#x}: {:#x} reads back as {:#x}",
                    x.0, x.1, y.1
                ));
            }
        }
    };
    words("distributor".into(), &a.dist, &b.dist, &[]);
    words("line level".into(), &a.line_levels, &b.line_levels, &[]);
    for (v, (x, y)) in a.redist.iter().zip(&b.redist).enumerate() {
        words(format!("vCPU {v} redistributor"), x, y, &SANITISED);
    }
    for (v, (x, y)) in a.cpu.iter().zip(&b.cpu).enumerate() {
        for (x, y) in x.iter().zip(y) {
            if x != y {
                out.push(format!(
                    "vCPU {v} CPU interface {:#x}: {:#x} reads back as {:#x}",
                    x.0, x.1, y.1
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icc_encodings_are_the_architectures() {
        // ICC_SRE_EL1 is S3_0_C12_C12_5; the attribute is op0:op1:CRn:CRm:op2 in 16 bits.
        assert_eq!(ICC_SRE_EL1, 0xc665);
        assert_eq!(icc_ap1r(1), 0xc649);
    }

    #[test]
    fn affinity_moves_aff3_next_to_aff2() {
        assert_eq!(affinity_attr(0x8000_0001), 0x0000_0001_0000_0000);
        assert_eq!(affinity_attr(0x12_0003_0201), 0x1203_0201_0000_0000);
    }

    #[test]
    fn spi_words_cover_the_spis_only() {
        let enable = &DIST_AFTER_LEVELS[3];
        assert_eq!(spi_words(enable, 64).collect::<Vec<_>>(), vec![0x104]);
        let route = &DIST_BEFORE_LEVELS[1];
        assert_eq!(spi_words(route, 64).count(), 64);
        assert_eq!(dist_clear(0x104, 64), Some(0x184));
        assert_eq!(dist_clear(0x404, 64), None);
    }
}
