// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The guest's physical address map, and where the kernel, the initramfs and the device
//! tree go in its RAM.
//!
//! ```text
//! 0x0800_0000  GICv3 distributor           64 KiB
//! 0x080a_0000  GICv3 redistributors        128 KiB per vCPU (at most MAX_VCPUS)
//! 0x0900_0000  16550A UART                 4 KiB, SPI 1 (INTID 33), level-high
//! 0x4000_0000  RAM                         the Image at RAM_BASE + text_offset,
//!                                          the initramfs just below the device tree,
//!                                          the device tree 2 MiB below the end of RAM
//! ```
//!
//! The devices sit where QEMU's `virt` machine has its GIC and first UART, RAM where `virt`
//! has it.

use thiserror::Error;

use crate::image::ImageHeader;

/// The GICv3 distributor's base address.
pub const GIC_DIST_BASE: u64 = 0x0800_0000;
/// The distributor's size.
pub const GIC_DIST_SIZE: u64 = 0x1_0000;
/// The first redistributor's base address.
pub const GIC_REDIST_BASE: u64 = 0x080a_0000;
/// One vCPU's redistributor (RD and SGI frames).
pub const GIC_REDIST_SIZE_PER_VCPU: u64 = 0x2_0000;
/// The 16550A's base address.
pub const UART_BASE: u64 = 0x0900_0000;
/// The 16550A's MMIO window.
pub const UART_SIZE: u64 = 0x1000;
/// The 16550A's SPI number (INTID 32 + this).
pub const UART_SPI: u32 = 1;
/// The interrupts the vGIC has: 32 private (SGIs and PPIs) and 32 SPIs.
pub const GIC_NR_IRQS: u32 = 64;
/// Where RAM starts.
pub const RAM_BASE: u64 = 0x4000_0000;
/// The most vCPUs the map has redistributors for (they must end below the UART).
pub const MAX_VCPUS: usize = 64;
/// The device tree's place: this far below the end of RAM (the boot protocol allows a
/// blob of up to 2 MiB, 8-byte aligned).
pub const FDT_MAX_SIZE: u64 = 0x20_0000;
/// The kernel's base must be 2 MiB aligned (arm64 boot protocol).
const KERNEL_BASE_ALIGN: u64 = 0x20_0000;
/// The initramfs starts on a page boundary.
const PAGE_SIZE: u64 = 0x1000;

// The map holds together: the GIC's frames do not overlap each other or the UART, and the
// kernel's 2 MiB aligned base can be RAM_BASE itself.
const _: () = assert!(GIC_DIST_BASE + GIC_DIST_SIZE <= GIC_REDIST_BASE);
const _: () = assert!(GIC_REDIST_BASE + gic_redist_size(MAX_VCPUS) <= UART_BASE);
const _: () = assert!(RAM_BASE % KERNEL_BASE_ALIGN == 0);

/// The total size of the redistributor region for `vcpus` vCPUs.
pub const fn gic_redist_size(vcpus: usize) -> u64 {
    GIC_REDIST_SIZE_PER_VCPU * vcpus as u64
}

/// Where each part of the boot payload goes in guest physical memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The RAM's size in bytes.
    pub ram_size: u64,
    /// The Image's load address (the boot vCPU's PC).
    pub kernel_addr: u64,
    /// The end of the kernel's memory (load address + image_size).
    pub kernel_end: u64,
    /// The initramfs's start, if there is one.
    pub initrd_addr: u64,
    /// The initramfs's size in bytes (0 for none).
    pub initrd_size: u64,
    /// The device tree's address (the boot vCPU's x0).
    pub fdt_addr: u64,
}

/// Why the payload does not fit.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// RAM is smaller than the kernel, the initramfs and the device tree need.
    #[error(
        "{ram_size:#x} bytes of RAM hold no kernel of {kernel_size:#x} bytes, initramfs of {initrd_size:#x} bytes and device tree"
    )]
    TooSmall {
        /// The RAM's size.
        ram_size: u64,
        /// The kernel's size in memory (with its offset).
        kernel_size: u64,
        /// The initramfs's size.
        initrd_size: u64,
    },
}

impl Layout {
    /// Places an Image with `header` (whose file is `file_len` bytes) and an initramfs of
    /// `initrd_size` bytes in `ram_size` bytes of RAM at [`RAM_BASE`]: the kernel at
    /// `RAM_BASE + text_offset` (RAM_BASE is 2 MiB aligned), the device tree
    /// [`FDT_MAX_SIZE`] below the end of RAM, the initramfs page-aligned right below it.
    pub fn plan(
        ram_size: u64,
        header: &ImageHeader,
        file_len: u64,
        initrd_size: u64,
    ) -> Result<Layout, LayoutError> {
        let too_small = LayoutError::TooSmall {
            ram_size,
            kernel_size: header
                .load_offset()
                .saturating_add(header.size_in_memory(file_len)),
            initrd_size,
        };
        let kernel_addr = RAM_BASE + header.load_offset();
        let kernel_end = kernel_addr
            .checked_add(header.size_in_memory(file_len))
            .ok_or(too_small.clone())?;
        let ram_end = RAM_BASE.checked_add(ram_size).ok_or(too_small.clone())?;
        let fdt_addr = ram_end.checked_sub(FDT_MAX_SIZE).ok_or(too_small.clone())?;
        let initrd_addr = fdt_addr
            .checked_sub(initrd_size)
            .map(|a| a & !(PAGE_SIZE - 1))
            .ok_or(too_small.clone())?;
        if initrd_addr < kernel_end || fdt_addr < kernel_end {
            return Err(too_small);
        }
        Ok(Layout {
            ram_size,
            kernel_addr,
            kernel_end,
            initrd_addr,
            initrd_size,
            fdt_addr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn header(text_offset: u64, image_size: u64) -> ImageHeader {
        ImageHeader {
            text_offset,
            image_size,
            flags: 0b1010,
        }
    }

    #[test]
    fn test_plan_256_mib_places_kernel_at_text_offset_and_fdt_below_the_end() {
        let layout = Layout::plan(256 * MIB, &header(0, 50 * MIB), 45 * MIB, 3 * MIB + 5).unwrap();
        assert_eq!(layout.kernel_addr, RAM_BASE);
        assert_eq!(layout.kernel_end, RAM_BASE + 50 * MIB);
        assert_eq!(layout.fdt_addr, RAM_BASE + 254 * MIB);
        assert_eq!(layout.initrd_addr, RAM_BASE + 254 * MIB - 3 * MIB - 0x1000);
        assert_eq!(layout.initrd_addr % 0x1000, 0);
        assert!(layout.initrd_addr + layout.initrd_size <= layout.fdt_addr);
    }

    #[test]
    fn test_plan_old_image_without_size_loads_at_0x80000() {
        let layout = Layout::plan(64 * MIB, &header(0x8_0000, 0), 10 * MIB, 0).unwrap();
        assert_eq!(layout.kernel_addr, RAM_BASE + 0x8_0000);
        assert_eq!(layout.kernel_end, RAM_BASE + 0x8_0000 + 10 * MIB);
    }

    #[test]
    fn test_plan_initrd_overlapping_kernel_returns_too_small() {
        let err = Layout::plan(64 * MIB, &header(0, 50 * MIB), 45 * MIB, 13 * MIB).unwrap_err();
        assert!(matches!(err, LayoutError::TooSmall { .. }));
    }
}
