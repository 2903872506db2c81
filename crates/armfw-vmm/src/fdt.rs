// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The guest's device tree, written with rust-vmm's `vm-fdt`: what an arm64 Linux kernel
//! needs to boot on the map of [`crate::layout`] and nothing more.
//!
//! ```text
//! / { compatible = "linux,dummy-virt"; #address-cells = <2>; #size-cells = <2>;
//!     interrupt-parent = <&gic>;
//!   cpus { #address-cells = <2>; #size-cells = <0>;
//!     cpu@N { device_type = "cpu"; compatible = "arm,arm-v8"; enable-method = "psci";
//!             reg = <0 MPIDR-affinity>; } ... };
//!   psci { compatible = "arm,psci-1.0", "arm,psci-0.2"; method = "hvc"; };
//!   memory@40000000 { device_type = "memory"; reg = <RAM_BASE size>; };
//!   intc@8000000 { compatible = "arm,gic-v3"; interrupt-controller; #interrupt-cells = <3>;
//!                  reg = <distributor>, <redistributors>; phandle = <1>; };
//!   timer { compatible = "arm,armv8-timer"; always-on;
//!           interrupts = <PPI 13>, <PPI 14>, <PPI 11>, <PPI 10>; };
//!   uart@9000000 { compatible = "ns16550a"; reg = <...>; interrupts = <SPI 1 level-high>;
//!                  clock-frequency = <1843200>; };
//!   chosen { bootargs; stdout-path; linux,initrd-start; linux,initrd-end; };
//! };
//! ```
//!
//! There is no PMU node: the guest PMU stays off (QEMU as a nested VMM with its vPMU on
//! once crashed the emulated host, docs/linux-guest.md).

use armfw::abi::Mpidr;
use thiserror::Error;
use vm_fdt::FdtWriter;

use crate::layout::{
    GIC_DIST_BASE, GIC_DIST_SIZE, GIC_REDIST_BASE, MAX_VCPUS, RAM_BASE, UART_BASE, UART_SIZE,
    UART_SPI, gic_redist_size,
};

/// The GIC's phandle.
const GIC_PHANDLE: u32 = 1;
/// Interrupt specifier cells: type SPI / PPI.
const GIC_SPI: u32 = 0;
const GIC_PPI: u32 = 1;
/// IRQ_TYPE_LEVEL_HIGH.
const IRQ_TYPE_LEVEL_HIGH: u32 = 4;
/// The arch timer's PPIs: secure physical, non-secure physical, virtual, hypervisor.
const TIMER_PPIS: [u32; 4] = [13, 14, 11, 10];
/// The 16550's input clock (the PC's 1.8432 MHz; Linux only needs a value).
const UART_CLOCK_HZ: u32 = 1_843_200;

/// What the device tree describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FdtConfig {
    /// Number of vCPUs (1 to [`MAX_VCPUS`]); vCPU i has KVM's default MPIDR for index i.
    pub vcpus: usize,
    /// RAM size in bytes, at [`RAM_BASE`].
    pub ram_size: u64,
    /// The kernel command line.
    pub bootargs: String,
    /// The initramfs's guest physical range `[start, end)`, if there is one.
    pub initrd: Option<(u64, u64)>,
}

/// Why no device tree was written.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FdtError {
    /// The vCPU count is 0 or above [`MAX_VCPUS`].
    #[error("{0} vCPUs: the machine has 1 to {MAX_VCPUS}")]
    VcpuCount(usize),
    /// vm-fdt refused a node or property.
    #[error("device tree: {0}")]
    Writer(#[from] vm_fdt::Error),
}

/// The node name of the UART (also the console's `stdout-path`).
pub fn uart_node_name() -> String {
    format!("uart@{UART_BASE:x}")
}

/// Writes the device tree blob for `cfg`.
pub fn build(cfg: &FdtConfig) -> Result<Vec<u8>, FdtError> {
    if cfg.vcpus == 0 || cfg.vcpus > MAX_VCPUS {
        return Err(FdtError::VcpuCount(cfg.vcpus));
    }
    let mut fdt = FdtWriter::new()?;
    let root = fdt.begin_node("")?;
    fdt.property_string("compatible", "linux,dummy-virt")?;
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.property_u32("interrupt-parent", GIC_PHANDLE)?;

    let cpus = fdt.begin_node("cpus")?;
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_u32("#size-cells", 0)?;
    for i in 0..cfg.vcpus {
        let mpidr = Mpidr::for_vcpu_index(i).affinity();
        let cpu = fdt.begin_node(&format!("cpu@{mpidr:x}"))?;
        fdt.property_string("device_type", "cpu")?;
        fdt.property_string("compatible", "arm,arm-v8")?;
        fdt.property_string("enable-method", "psci")?;
        fdt.property_array_u64("reg", &[mpidr])?;
        fdt.end_node(cpu)?;
    }
    fdt.end_node(cpus)?;

    let psci = fdt.begin_node("psci")?;
    fdt.property_string_list(
        "compatible",
        vec!["arm,psci-1.0".into(), "arm,psci-0.2".into()],
    )?;
    fdt.property_string("method", "hvc")?;
    fdt.end_node(psci)?;

    let memory = fdt.begin_node(&format!("memory@{RAM_BASE:x}"))?;
    fdt.property_string("device_type", "memory")?;
    fdt.property_array_u64("reg", &[RAM_BASE, cfg.ram_size])?;
    fdt.end_node(memory)?;

    let gic = fdt.begin_node(&format!("intc@{GIC_DIST_BASE:x}"))?;
    fdt.property_string("compatible", "arm,gic-v3")?;
    fdt.property_null("interrupt-controller")?;
    fdt.property_u32("#interrupt-cells", 3)?;
    fdt.property_array_u64(
        "reg",
        &[
            GIC_DIST_BASE,
            GIC_DIST_SIZE,
            GIC_REDIST_BASE,
            gic_redist_size(cfg.vcpus),
        ],
    )?;
    fdt.property_phandle(GIC_PHANDLE)?;
    fdt.end_node(gic)?;

    let timer = fdt.begin_node("timer")?;
    fdt.property_string("compatible", "arm,armv8-timer")?;
    fdt.property_null("always-on")?;
    let cells: Vec<u32> = TIMER_PPIS
        .iter()
        .flat_map(|&ppi| [GIC_PPI, ppi, IRQ_TYPE_LEVEL_HIGH])
        .collect();
    fdt.property_array_u32("interrupts", &cells)?;
    fdt.end_node(timer)?;

    let uart = fdt.begin_node(&uart_node_name())?;
    fdt.property_string("compatible", "ns16550a")?;
    fdt.property_array_u64("reg", &[UART_BASE, UART_SIZE])?;
    fdt.property_array_u32("interrupts", &[GIC_SPI, UART_SPI, IRQ_TYPE_LEVEL_HIGH])?;
    fdt.property_u32("clock-frequency", UART_CLOCK_HZ)?;
    fdt.end_node(uart)?;

    let chosen = fdt.begin_node("chosen")?;
    fdt.property_string("bootargs", &cfg.bootargs)?;
    fdt.property_string("stdout-path", &format!("/{}", uart_node_name()))?;
    if let Some((start, end)) = cfg.initrd {
        fdt.property_u64("linux,initrd-start", start)?;
        fdt.property_u64("linux,initrd-end", end)?;
    }
    fdt.end_node(chosen)?;

    fdt.end_node(root)?;
    Ok(fdt.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flattened device tree read back: (node path, property name, value) triples.
    fn props(blob: &[u8]) -> Vec<(String, String, Vec<u8>)> {
        let be32 = |off: usize| u32::from_be_bytes(blob[off..off + 4].try_into().unwrap());
        assert_eq!(be32(0), 0xd00d_feed, "FDT magic");
        let (structs, strings) = (be32(8) as usize, be32(12) as usize);
        let mut out = Vec::new();
        let mut path: Vec<String> = Vec::new();
        let mut off = structs;
        loop {
            let token = be32(off);
            off += 4;
            match token {
                1 => {
                    let end = off + blob[off..].iter().position(|&b| b == 0).unwrap();
                    path.push(String::from_utf8(blob[off..end].to_vec()).unwrap());
                    off = (end + 1).next_multiple_of(4);
                }
                2 => {
                    path.pop();
                }
                3 => {
                    let (len, nameoff) = (be32(off) as usize, be32(off + 4) as usize);
                    let value = blob[off + 8..off + 8 + len].to_vec();
                    let s = &blob[strings + nameoff..];
                    let name =
                        String::from_utf8(s[..s.iter().position(|&b| b == 0).unwrap()].to_vec())
                            .unwrap();
                    out.push((path.join("/"), name, value));
                    off = (off + 8 + len).next_multiple_of(4);
                }
                4 => {}
                9 => return out,
                t => panic!("bad FDT token {t}"),
            }
        }
    }

    fn prop(blob: &[u8], node: &str, name: &str) -> Option<Vec<u8>> {
        props(blob)
            .into_iter()
            .find(|(n, p, _)| n == node && p == name)
            .map(|(_, _, v)| v)
    }

    fn be64s(v: &[u8]) -> Vec<u64> {
        v.chunks(8)
            .map(|c| u64::from_be_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn be32s(v: &[u8]) -> Vec<u32> {
        v.chunks(4)
            .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn config(vcpus: usize) -> FdtConfig {
        FdtConfig {
            vcpus,
            ram_size: 256 << 20,
            bootargs: "console=ttyS0 quiet".into(),
            initrd: Some((0x4fc0_0000, 0x4fd0_0000)),
        }
    }

    #[test]
    fn test_psci_node_is_psci_1_0_and_0_2_over_hvc() {
        let blob = build(&config(2)).unwrap();
        assert_eq!(
            prop(&blob, "/psci", "compatible").unwrap(),
            b"arm,psci-1.0\0arm,psci-0.2\0"
        );
        assert_eq!(prop(&blob, "/psci", "method").unwrap(), b"hvc\0");
    }

    #[test]
    fn test_one_psci_cpu_node_per_vcpu_with_kvm_mpidr() {
        let blob = build(&config(18)).unwrap();
        let cpus: Vec<_> = props(&blob)
            .into_iter()
            .filter(|(n, p, _)| n.starts_with("/cpus/cpu@") && p == "reg")
            .map(|(n, _, v)| (n, be64s(&v)))
            .collect();
        assert_eq!(cpus.len(), 18);
        assert_eq!(cpus[1], ("/cpus/cpu@1".to_string(), vec![1]));
        assert_eq!(cpus[17], ("/cpus/cpu@101".to_string(), vec![0x101]));
        assert_eq!(
            prop(&blob, "/cpus/cpu@101", "enable-method").unwrap(),
            b"psci\0"
        );
    }

    #[test]
    fn test_memory_node_covers_ram() {
        let blob = build(&config(2)).unwrap();
        let reg = prop(&blob, "/memory@40000000", "reg").unwrap();
        assert_eq!(be64s(&reg), vec![0x4000_0000, 256 << 20]);
    }

    #[test]
    fn test_gic_v3_has_distributor_and_one_redistributor_per_vcpu() {
        let blob = build(&config(2)).unwrap();
        let reg = prop(&blob, "/intc@8000000", "reg").unwrap();
        assert_eq!(
            be64s(&reg),
            vec![0x0800_0000, 0x1_0000, 0x080a_0000, 0x4_0000]
        );
        assert_eq!(
            prop(&blob, "/intc@8000000", "compatible").unwrap(),
            b"arm,gic-v3\0"
        );
        assert_eq!(
            be32s(&prop(&blob, "/intc@8000000", "phandle").unwrap()),
            vec![1]
        );
        assert_eq!(
            be32s(&prop(&blob, "", "interrupt-parent").unwrap()),
            vec![1]
        );
    }

    #[test]
    fn test_timer_has_the_four_ppis() {
        let blob = build(&config(1)).unwrap();
        let irqs = be32s(&prop(&blob, "/timer", "interrupts").unwrap());
        assert_eq!(irqs, vec![1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4]);
    }

    #[test]
    fn test_uart_is_a_16550a_on_spi_1_level_high() {
        let blob = build(&config(1)).unwrap();
        assert_eq!(
            prop(&blob, "/uart@9000000", "compatible").unwrap(),
            b"ns16550a\0"
        );
        assert_eq!(
            be32s(&prop(&blob, "/uart@9000000", "interrupts").unwrap()),
            vec![0, 1, 4]
        );
        assert_eq!(
            be64s(&prop(&blob, "/uart@9000000", "reg").unwrap()),
            vec![0x0900_0000, 0x1000]
        );
    }

    #[test]
    fn test_chosen_has_bootargs_console_and_initrd_range() {
        let blob = build(&config(1)).unwrap();
        assert_eq!(
            prop(&blob, "/chosen", "bootargs").unwrap(),
            b"console=ttyS0 quiet\0"
        );
        assert_eq!(
            prop(&blob, "/chosen", "stdout-path").unwrap(),
            b"/uart@9000000\0"
        );
        assert_eq!(
            be64s(&prop(&blob, "/chosen", "linux,initrd-start").unwrap()),
            vec![0x4fc0_0000]
        );
        assert_eq!(
            be64s(&prop(&blob, "/chosen", "linux,initrd-end").unwrap()),
            vec![0x4fd0_0000]
        );
    }

    #[test]
    fn test_no_initrd_leaves_out_the_initrd_properties() {
        let mut cfg = config(1);
        cfg.initrd = None;
        let blob = build(&cfg).unwrap();
        assert_eq!(prop(&blob, "/chosen", "linux,initrd-start"), None);
    }

    #[test]
    fn test_zero_vcpus_is_refused() {
        assert!(matches!(build(&config(0)), Err(FdtError::VcpuCount(0))));
    }

    #[test]
    fn test_blob_fits_the_space_the_layout_gives_it() {
        let blob = build(&config(MAX_VCPUS)).unwrap();
        assert!(blob.len() as u64 <= crate::layout::FDT_MAX_SIZE);
    }
}
