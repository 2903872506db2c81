//! QEMU as a KVM client: its migration stream, read ([`stream`]).
//!
//! Most arm64 KVM fleets move their VMs with QEMU. QEMU saves a vCPU's registers as its
//! "cpreg" list (every id KVM_GET_REG_LIST gives but the core and SVE ones, sorted, with
//! 64-bit values) beside the core state, and on the destination it compares that list with
//! what the destination's KVM lists before it writes the values back. [`stream::read`] takes
//! those lists out of a stream QEMU wrote, without reading guest RAM into memory.

pub mod advice;
pub mod policy;
pub mod report;
pub mod stream;

pub use advice::{Remedy, remedies};
pub use policy::{HostCpu, Incoming, LoadPrediction, LoadStop, QemuRelease, predict};
pub use stream::{ByteSource, QemuVcpu, Stream, StreamError, StreamErrorKind};
