// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The payloads: one serde enum per in-host program, and the rows they carry.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

// ------------------------------------------------------------------------------------------
// QEMU as a KVM client (conformance/qemu).

/// A record of the QEMU client harness's in-host program.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum QemuRecord {
    /// The host and its QEMU (first).
    Host {
        /// The host's kernel release.
        kernel: String,
        /// The host's CPU model (`armfw.cpu=`).
        cpu: String,
        /// `qemu-system-aarch64 --version`'s first line.
        qemu: String,
    },
    /// QEMU saved its guest.
    Save {
        /// `completed`, `failed`, `exited` or `timeout`.
        status: String,
        /// The guest's last tick before `stop`.
        last_tick: u64,
        /// The stream's size.
        stream_bytes: u64,
        /// Milliseconds from QEMU's start to that tick.
        boot_ms: u64,
        /// Milliseconds from `stop` to the end of the migration.
        save_ms: u64,
        /// QEMU's last message, when it did not complete.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// QEMU loaded (or refused) a stream.
    Load {
        /// `refused` (QEMU exited before the VM was loaded), `continues` (the guest printed
        /// its next tick) or `died` (loaded, and the guest did not go on).
        outcome: String,
        /// The guest's first tick after `cont`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        first_tick: Option<u64>,
        /// Milliseconds from QEMU's start to the loaded VM (or its exit).
        load_ms: u64,
        /// QEMU's exit status, if it had exited.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit: Option<i32>,
        /// QEMU's messages (`qemu-system-aarch64: ...` lines): why, for a refusal or a
        /// death; its warnings, for a load that goes on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// The program could not run.
    Error {
        /// Why.
        error: String,
    },
}

// ------------------------------------------------------------------------------------------
// The conformance harness (conformance/run).

/// A record of the conformance harness's in-host program.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConformanceRecord {
    /// The host's probed profile (first).
    Profile {
        /// The profile, as `armfw probe` writes it.
        profile: Value,
    },
    /// One scenario file's outcome.
    Scenario(Box<ScenarioRecord>),
    /// The host cannot run scenarios at all.
    Error {
        /// Why.
        error: String,
    },
}

/// One scenario file run on real KVM and on the model (or why it was not).
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct ScenarioRecord {
    /// The scenario set (`project` is the repository's own).
    pub set: String,
    /// The file's name in the set.
    pub file: String,
    /// Why the file is not a scenario; then no documents follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Real KVM's result document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kvm: Option<Value>,
    /// The model's result document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<Value>,
    /// Where the two differ.
    #[serde(default)]
    pub mismatches: Vec<Mismatch>,
    /// The swap test (`--firmware armfw`), when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap: Option<Swap>,
}

/// One step whose results differ.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct Mismatch {
    /// The step's index.
    pub step: usize,
    /// Real KVM's result (in the swap test: KVM's own firmware).
    pub kvm: Value,
    /// The model's result (in the swap test: armfw's firmware on KVM).
    pub model: Value,
}

/// The swap test of one scenario: run with armfw's userspace firmware, or why not.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Swap {
    /// It ran.
    Ran {
        /// The result document with armfw's firmware.
        armfw: Value,
        /// Where it differs from KVM's own firmware's.
        mismatches: Vec<Mismatch>,
    },
    /// It did not run.
    Skipped {
        /// Why.
        skipped: String,
    },
}

// ------------------------------------------------------------------------------------------
// The real-migration harness (conformance/migrate).

/// A record of the real-migration harness's in-host program.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MigrationRecord {
    /// The host's probed profile (first, in every mode).
    Profile {
        /// The profile, as `armfw probe` writes it.
        profile: Value,
    },
    /// A saved VM (`save` mode).
    State(StateRecord),
    /// One restore and its prediction (`restore` mode).
    Row(Row),
    /// The mode failed.
    Error {
        /// Why.
        error: String,
    },
}

/// A VM's firmware state saved on a host, with what its guest saw.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct StateRecord {
    /// The profile name of the host that saved it.
    pub host: String,
    /// `default` (KVM's defaults) or `baseline` (the pool baseline applied at creation).
    pub config: String,
    /// The state file, as JSON.
    pub snapshot: Value,
    /// The guest-view calls' answers (x0..x3 per call, in hex).
    pub view: Vec<Vec<String>>,
}

/// One restore of a saved state, against armfw's prediction.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct Row {
    /// The host that saved the state.
    pub from: String,
    /// The host it was restored on.
    pub to: String,
    /// The saved VM's configuration.
    pub config: String,
    /// `strict` or `armfw`.
    pub policy: String,
    /// `ok` or `fail`.
    pub predicted: String,
    /// For a predicted failure: `STEP: ERRNO`, or `armfw refuses`.
    pub predicted_detail: Option<String>,
    /// `ok`, `fail` or `error`.
    pub real: String,
    /// For a real failure or error: what failed.
    pub detail: Option<String>,
    /// After a success: whether the guest saw the same firmware (`true`/`false`), or why
    /// the calls failed (a string); `null` otherwise.
    pub guest_view_same: Value,
    /// armfw's verdict.
    pub verdict: String,
    /// The verdict's reason, when it is not plain compatibility.
    pub why: Option<String>,
    /// For a state created with the pool's CPU baseline: whether the baseline covers the
    /// destination (armfw's plan must then restore it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covered: Option<bool>,
}

// ------------------------------------------------------------------------------------------
// armfw-vmm's PID-1 mode (conformance/linux-guest).

/// A record of armfw-vmm's PID-1 mode (flat objects with a `type`).
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum VmmRecord {
    /// The host and the plan (first).
    Host {
        /// The host's kernel release.
        kernel: String,
        /// The host's CPU model (`armfw.cpu=`).
        cpu: String,
        /// Whether the host's KVM has the SMCCC filter.
        smccc_filter: bool,
        /// The guest's vCPUs.
        vcpus: usize,
        /// The guest's RAM.
        memory_mib: u64,
        /// The firmware modes, in order.
        firmwares: Vec<String>,
        /// The actions, in order.
        actions: Vec<String>,
    },
    /// One guest run.
    Run(Box<VmmRun>),
    /// One check of a run (or of two runs: firmware `both`).
    Check {
        /// The firmware mode (`kernel`, `armfw` or `both`).
        firmware: String,
        /// The action.
        action: String,
        /// What was checked.
        check: String,
        /// `pass`, `fail` or `skip`.
        result: String,
        /// What was seen.
        detail: String,
    },
    /// One half of a move of a running guest (conformance/guest-migrate): `save` on the
    /// source host, `restore` on the destination; `run` is armfw-vmm's result of that run
    /// (its `--result` document, with the bundle's size and times).
    Migration {
        /// `save` or `restore`.
        role: String,
        /// armfw-vmm's result.
        run: Value,
    },
    /// The plan could not be read.
    Error {
        /// Why.
        error: String,
    },
}

/// One guest run of armfw-vmm.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct VmmRun {
    /// The firmware mode.
    pub firmware: String,
    /// The action.
    pub action: String,
    /// How the run ended.
    pub exit: String,
    /// The system event's data.
    pub exit_data: Vec<u64>,
    /// The vCPU that exited, for a system event.
    pub exit_vcpu: Option<usize>,
    /// What went wrong.
    pub error: Option<String>,
    /// Milliseconds to the first KVM_RUN.
    pub setup_ms: u64,
    /// Milliseconds from the first KVM_RUN to the guest init's first line.
    pub boot_to_init_ms: Option<u64>,
    /// The guest's uptime when its init started (seconds, as the guest printed it).
    pub guest_uptime_at_init: Option<String>,
    /// Milliseconds from the first KVM_RUN to the end.
    pub total_ms: u64,
    /// The calls answered in userspace.
    pub userspace_calls: u64,
    /// Those calls, by function.
    pub calls: BTreeMap<String, u64>,
}
