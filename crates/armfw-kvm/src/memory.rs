//! Guest RAM for a VMM: a [`GuestMemoryMmap`] registered as KVM memory slots.
//!
//! KVM keeps using a slot's host memory for as long as the VM exists, so the memory must
//! never be unmapped before the VM is gone. Taking it as `&'static` (the VMM leaks it, e.g.
//! with `Box::leak`) makes that hold by construction, and the registration safe to call.

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use vm_memory::{GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use crate::Error;
use crate::error::sys;

/// Registers each region of `memory` with `vm` as memory slots `first_slot`, `first_slot + 1`,
/// ... (KVM_SET_USER_MEMORY_REGION).
pub fn register_ram(
    vm: &VmFd,
    first_slot: u32,
    memory: &'static GuestMemoryMmap,
) -> Result<(), Error> {
    for (slot, region) in (first_slot..).zip(memory.iter()) {
        let host = memory
            .get_host_address(region.start_addr())
            .map_err(Error::GuestMemory)?;
        let r = kvm_userspace_memory_region {
            slot,
            flags: 0,
            guest_phys_addr: region.start_addr().0,
            memory_size: region.len(),
            userspace_addr: host as u64,
        };
        // SAFETY: one KVM_SET_USER_MEMORY_REGION ioctl. The region is one mmap of `memory`,
        // of exactly `region.len()` bytes at `host`; `memory` is 'static, so the mapping
        // outlives the VM. The guest may write to it at any time: the VMM accesses it only
        // through vm-memory's volatile accessors.
        unsafe { vm.set_user_memory_region(r) }.map_err(sys("KVM_SET_USER_MEMORY_REGION"))?;
    }
    Ok(())
}
