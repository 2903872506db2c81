//! Whole-VM restores under today's VMMs: what each [`VmmPolicy`] meets when it writes a
//! whole-VM state (format 2.0) back on a destination host.
//!
//! The prediction is the restore itself: [`sequence::restore_with`], the one sequence real
//! vCPUs also go through (`armfw_kvm::migrate`), run against the model of the destination
//! ([`ModelVm`]). So every refused write, its errno and its order are the ones the model of
//! that host's KVM gives, and the conformance harness holds that model against the real
//! kernel.

use crate::Profile;
use crate::Snapshot;
use crate::firmware::Firmware;
use crate::migrate::ModelVm;
use crate::migrate::sequence::{self, RestoreStop, VmmPolicy, Writes};

/// What a restore under one VMM policy meets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyOutcome {
    /// The policy.
    pub policy: VmmPolicy,
    /// `Ok` when KVM accepts every operation, else where it stopped.
    pub result: Result<(), RestoreStop>,
}

impl PolicyOutcome {
    /// Whether the restore succeeds.
    pub fn succeeds(&self) -> bool {
        self.result.is_ok()
    }
}

/// The restore of `snapshot` on `dest` under each of [`VmmPolicy::ALL`], in that order. A
/// snapshot without the whole-vCPU part is restored as its firmware registers alone.
pub fn vmm_outcomes(snapshot: &Snapshot, dest: &Profile) -> Vec<PolicyOutcome> {
    VmmPolicy::ALL
        .iter()
        .map(|&policy| PolicyOutcome {
            policy,
            result: restore_on_model(snapshot, dest, Writes::Vmm(policy)),
        })
        .collect()
}

/// Restore `snapshot` into a new VM on the model of `dest` as `writes` says.
pub fn restore_on_model(
    snapshot: &Snapshot,
    dest: &Profile,
    writes: Writes<'_>,
) -> Result<(), RestoreStop> {
    let mut vm = ModelVm::new(Firmware::new(dest));
    sequence::restore_with(&mut vm, snapshot, writes)
}
