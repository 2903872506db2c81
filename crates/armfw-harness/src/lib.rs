// SPDX-License-Identifier: Apache-2.0 OR MIT
//! armfw's own test harness, behind the scripts in conformance/ (never published, never part
//! of the shipped `armfw` binary).
//!
//! The `armfw-harness` binary is both halves of every harness:
//! - **in an emulated host**, as its `/init` (PID 1): the conformance mode (conformance/run),
//!   the migration modes `probe`, `save` and `restore` (conformance/migrate) and the smoke
//!   mode (conformance/boot-smoke), chosen by `armfw.mode=` on the kernel command line;
//! - **on the machine that booted the hosts**: `records` (a console log's records),
//!   `hosts` (a host spec's hosts), `initramfs` (the archive a host boots),
//!   `conformance-report` and `migrations-report`.
//!
//! This library holds what other programs share with it: the record protocol
//! ([`records`], also written by armfw-vmm's PID-1 mode), host specs ([`hosts`]) and the
//! initramfs writer ([`initramfs`]).

pub mod hosts;
pub mod initramfs;
pub mod records;
