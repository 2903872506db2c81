//! Migration compatibility: can the firmware state a guest has seen be restored on another
//! host, and how; and pool baselines.
//!
//! [`check`] takes a [`Snapshot`](crate::Snapshot) and a destination
//! [`Profile`](crate::Profile) and gives a [`Report`]:
//!
//! - a [`Finding`] per firmware register (and per capability the snapshot uses): the saved
//!   value, what the destination accepts, the [`Rule`] that decides, the [`Outcome`], and a
//!   [`Remedy`] where the answer is no;
//! - the [`Verdict`]: compatible (a restore that writes every saved register back succeeds
//!   and the guest's firmware does not change), compatible with armfw's plan, or
//!   incompatible;
//! - the plan ([`PlanAction`]s, in order) that [`RestorePolicy::Armfw`] carries out;
//! - the predicted outcome of the strict policy ([`RestorePolicy::Strict`], what today's VMMs
//!   do): success, or the first operation KVM refuses and its errno.
//!
//! [`baseline`] gives the firmware configuration every host of a pool accepts.
//!
//! # The rule behind every plan
//!
//! The guest-visible firmware never changes under a running guest. armfw never lowers or
//! raises the PSCI version, never removes or adds a service bit, never lets a guest move to a
//! host whose mitigation level is below what it was told. A register is left out only where its
//! saved value means exactly what the register's absence means on the destination. Where the
//! guest has seen something the destination cannot give, the answer is a refusal with the
//! reason and the remedy. Each [`Rule`] says why it is safe.
//!
//! # Cost
//!
//! [`check`] does not allocate: the report holds fixed-size lists, and every rule is a
//! comparison of integers. It reads the snapshot's parsed form; parsing is separate.
//!
//! # What it does not check
//!
//! Only the firmware: PSCI, SMCCC services, the firmware pseudo-registers, the SMCCC filter
//! and the system-suspend capability. CPU features, ID registers, SVE, the GIC, timers and
//! memory are the VMM's.
//!
//! [`RestorePolicy::Armfw`]: crate::migrate::RestorePolicy::Armfw
//! [`RestorePolicy::Strict`]: crate::migrate::RestorePolicy::Strict

mod baseline;
mod check;
mod cpu;
mod finding;
pub mod fleet;
mod report;
mod rule;
mod strict;
pub mod whole;

pub use baseline::{
    ApplyError, BASELINE_FORMAT, Baseline, BaselineError, BaselineJson, BaselineRegisterJson,
    WorkaroundJson, WorkaroundSpread, baseline,
};
pub use check::{MAX_FINDINGS, Report, check};
pub use cpu::{
    CpuBaseline, CpuBaselineError, CpuBaselineJson, CpuRecipe, FieldChoice, FieldJson,
    HostValueJson, ImplementationJson, LeftOut, LeftOutJson, RecipeJson, RegisterExplanation,
    cpu_baseline, explain_refusal,
};
pub use finding::{
    Accepts, Finding, Need, Outcome, PlanAction, Remedy, StrictOutcome, Subject, Verdict,
    VersionSet,
};
pub use report::{
    CHECK_FORMAT, CheckJson, DestinationJson, FindingJson, HostJson, PlanJson, Saved, StrictJson,
    StrictResult,
};
pub use rule::Rule;

#[cfg(test)]
mod tests;
