// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The guest side of a call: one memory slot holding two call stubs and an exception
//! vector table, all of which leave the guest through an MMIO store.
//!
//! ```text
//! MEM_BASE + 0x000  hvc #0               HVC_ENTRY: a call through HVC
//!          + 0x004  ldr x30, =EXIT_MMIO
//!          + 0x008  str xzr, [x30]       -> KVM_EXIT_MMIO at EXIT_MMIO: the call returned
//!          + 0x00c  b .
//!          + 0x010  .quad EXIT_MMIO
//! MEM_BASE + 0x040  smc #0               SMC_ENTRY: the same through SMC
//!          ...
//! MEM_BASE + 0x080  wfi                  WFI_ENTRY: where userspace firmware resumes a
//!          ...                           CPU_SUSPEND (KVM's own answer is a WFI too)
//! MEM_BASE + 0x800  16 vectors of 0x80 bytes (VBAR_EL1); vector i stores to
//!                   VECTOR_MMIO + 8 * i, so a guest exception is an MMIO exit that names it
//! ```
//!
//! The MMU stays off (KVM resets SCTLR_EL1 so), so addresses are physical: the stores hit
//! IPAs outside the one memory slot and KVM hands them to userspace. The stubs clobber x30
//! only; x0..x17 are the call's.

/// Guest physical address of the memory slot.
pub(crate) const MEM_BASE: u64 = 0x1000_0000;
/// Size of the memory slot: 64 KiB, so that it is whole pages whatever the host's page size.
pub(crate) const MEM_SIZE: usize = 0x1_0000;
/// PC of a call through HVC.
pub(crate) const HVC_ENTRY: u64 = MEM_BASE;
/// PC of a call through SMC.
pub(crate) const SMC_ENTRY: u64 = MEM_BASE + 0x40;
/// Where a vCPU waits for an interrupt and then leaves as a returned call.
pub(crate) const WFI_ENTRY: u64 = MEM_BASE + 0x80;
/// VBAR_EL1 (2 KiB aligned).
pub(crate) const VECTORS: u64 = MEM_BASE + 0x800;
/// MMIO address stored to when a call has returned to the guest.
pub(crate) const EXIT_MMIO: u64 = 0x2000_0000;
/// MMIO address stored to by exception vector i, plus 8 * i.
pub(crate) const VECTOR_MMIO: u64 = 0x2000_1000;
/// Number of exception vectors.
pub(crate) const VECTOR_COUNT: u64 = 16;
/// PSTATE for a call: EL1h with D, A, I and F masked.
pub(crate) const PSTATE_EL1H_MASKED: u64 = 0x3c5;

/// `hvc #0`.
const HVC_0: u32 = 0xd400_0002;
/// `smc #0`.
const SMC_0: u32 = 0xd400_0003;
/// `wfi`.
const WFI: u32 = 0xd503_207f;
/// `str xzr, [x30]` (STR immediate, unsigned offset 0, 64-bit).
const STR_XZR_X30: u32 = 0xf900_03df;
/// `b .`
const B_SELF: u32 = 0x1400_0000;

/// `ldr x30, <pc + offset>` (LDR literal, 64-bit); `offset` is a multiple of 4.
const fn ldr_x30_literal(offset: u32) -> u32 {
    0x5800_0000 | ((offset / 4) & 0x7_ffff) << 5 | 30
}

/// The guest memory: one 64 KiB block, aligned so that it can back a memory slot.
#[repr(C, align(65536))]
pub(crate) struct GuestMemory(pub(crate) [u8; MEM_SIZE]);

impl std::fmt::Debug for GuestMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GuestMemory({MEM_SIZE:#x} bytes at IPA {MEM_BASE:#x})")
    }
}

impl GuestMemory {
    /// The memory with the call stubs and vectors in place.
    pub(crate) fn new() -> Box<GuestMemory> {
        let mut mem = Box::new(GuestMemory([0; MEM_SIZE]));
        mem.stub(HVC_ENTRY, HVC_0, EXIT_MMIO);
        mem.stub(SMC_ENTRY, SMC_0, EXIT_MMIO);
        mem.stub(WFI_ENTRY, WFI, EXIT_MMIO);
        let nop = 0xd503_201f; // first word of a vector: a NOP instead of a conduit
        for i in 0..VECTOR_COUNT {
            mem.stub(VECTORS + 0x80 * i, nop, VECTOR_MMIO + 8 * i);
        }
        mem
    }

    /// `first; ldr x30, =target; str xzr, [x30]; b .; .quad target` at `at`.
    fn stub(&mut self, at: u64, first: u32, target: u64) {
        let words = [first, ldr_x30_literal(0x10 - 4), STR_XZR_X30, B_SELF];
        let start = usize::try_from(at - MEM_BASE).expect("stub inside the slot");
        for (i, w) in words.iter().enumerate() {
            self.0[start + 4 * i..start + 4 * i + 4].copy_from_slice(&w.to_le_bytes());
        }
        self.0[start + 0x10..start + 0x18].copy_from_slice(&target.to_le_bytes());
    }
}

/// What an MMIO exit at `addr` means.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum MmioExit {
    /// The call returned to the guest.
    Returned,
    /// The guest took the exception of vector `index` (0..16).
    Vector(u64),
    /// Any other address: not ours.
    Unknown,
}

/// Classifies the MMIO write at guest physical address `addr`.
pub(crate) fn classify_mmio(addr: u64) -> MmioExit {
    if addr == EXIT_MMIO {
        MmioExit::Returned
    } else if (VECTOR_MMIO..VECTOR_MMIO + 8 * VECTOR_COUNT).contains(&addr)
        && (addr - VECTOR_MMIO) % 8 == 0
    {
        MmioExit::Vector((addr - VECTOR_MMIO) / 8)
    } else {
        MmioExit::Unknown
    }
}

/// A name for exception vector `index`: its source (current EL with SP0 or SPx, lower EL
/// AArch64 or AArch32) and type (synchronous, IRQ, FIQ, SError).
pub(crate) fn vector_name(index: u64) -> &'static str {
    const NAMES: [&str; 16] = [
        "current EL SP0 synchronous",
        "current EL SP0 IRQ",
        "current EL SP0 FIQ",
        "current EL SP0 SError",
        "current EL SPx synchronous",
        "current EL SPx IRQ",
        "current EL SPx FIQ",
        "current EL SPx SError",
        "lower EL AArch64 synchronous",
        "lower EL AArch64 IRQ",
        "lower EL AArch64 FIQ",
        "lower EL AArch64 SError",
        "lower EL AArch32 synchronous",
        "lower EL AArch32 IRQ",
        "lower EL AArch32 FIQ",
        "lower EL AArch32 SError",
    ];
    usize::try_from(index)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(mem: &GuestMemory, at: u64) -> u32 {
        let i = usize::try_from(at - MEM_BASE).unwrap();
        u32::from_le_bytes(mem.0[i..i + 4].try_into().unwrap())
    }

    #[test]
    fn ldr_x30_literal_12_encodes_like_gas() {
        // gas: `ldr x30, .+12` -> 5800007e
        assert_eq!(ldr_x30_literal(12), 0x5800_007e);
    }

    #[test]
    fn hvc_stub_starts_with_hvc_0() {
        let mem = GuestMemory::new();
        assert_eq!(word(&mem, HVC_ENTRY), 0xd400_0002);
    }

    #[test]
    fn smc_stub_starts_with_smc_0() {
        let mem = GuestMemory::new();
        assert_eq!(word(&mem, SMC_ENTRY), 0xd400_0003);
    }

    #[test]
    fn hvc_stub_literal_is_exit_mmio() {
        let mem = GuestMemory::new();
        let i = usize::try_from(HVC_ENTRY + 0x10 - MEM_BASE).unwrap();
        assert_eq!(
            u64::from_le_bytes(mem.0[i..i + 8].try_into().unwrap()),
            EXIT_MMIO
        );
    }

    #[test]
    fn vectors_are_2k_aligned() {
        assert_eq!(VECTORS % 0x800, 0);
    }

    #[test]
    fn vector_table_ends_inside_the_slot() {
        assert!(VECTORS + 0x80 * VECTOR_COUNT <= MEM_BASE + MEM_SIZE as u64);
    }

    #[test]
    fn classify_exit_mmio_is_returned() {
        assert_eq!(classify_mmio(EXIT_MMIO), MmioExit::Returned);
    }

    #[test]
    fn classify_vector_4_address_is_vector_4() {
        assert_eq!(classify_mmio(VECTOR_MMIO + 32), MmioExit::Vector(4));
    }

    #[test]
    fn classify_past_the_vectors_is_unknown() {
        assert_eq!(classify_mmio(VECTOR_MMIO + 8 * 16), MmioExit::Unknown);
    }
}
