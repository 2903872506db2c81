// SPDX-License-Identifier: Apache-2.0 OR MIT
//! What one guest run produced, as `armfw-vmm run --result` prints it (`@@VMM <json>`) and
//! the PID-1 harness reads it back.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use armfw::abi::FunctionId;
use serde::{Deserialize, Serialize};

/// The prefix of the result line of `armfw-vmm run --result`.
pub const RESULT_MARK: &str = "@@VMM";

/// Whose firmware the guest gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FirmwareMode {
    /// KVM's in-kernel PSCI/SMCCC firmware.
    Kernel,
    /// armfw's engine in the VMM: the SMCCC filter forwards PSCI and the other services to
    /// userspace (Linux 6.4 and later).
    Armfw,
}

impl FirmwareMode {
    /// The mode's name: `kernel` or `armfw`.
    pub const fn name(self) -> &'static str {
        match self {
            FirmwareMode::Kernel => "kernel",
            FirmwareMode::Armfw => "armfw",
        }
    }
}

impl fmt::Display for FirmwareMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FirmwareMode {
    type Err = String;

    fn from_str(s: &str) -> Result<FirmwareMode, String> {
        match s {
            "kernel" => Ok(FirmwareMode::Kernel),
            "armfw" => Ok(FirmwareMode::Armfw),
            _ => Err(format!("firmware is `kernel` or `armfw`, not `{s}`")),
        }
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunExit {
    /// A system event SHUTDOWN (SYSTEM_OFF, SYSTEM_OFF2).
    Shutdown,
    /// A system event RESET (SYSTEM_RESET, SYSTEM_RESET2).
    Reset,
    /// A system event CRASH.
    Crash,
    /// The time limit ran out.
    Timeout,
    /// The VMM failed (set-up, an ioctl, an exit it does not handle).
    Error,
    /// The VM was paused and saved (`--save`).
    Saved,
    /// armfw refused to restore the saved VM on this host, before creating anything.
    Refused,
}

impl RunExit {
    /// The name as in the result (`SHUTDOWN`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            RunExit::Shutdown => "SHUTDOWN",
            RunExit::Reset => "RESET",
            RunExit::Crash => "CRASH",
            RunExit::Timeout => "TIMEOUT",
            RunExit::Error => "ERROR",
            RunExit::Saved => "SAVED",
            RunExit::Refused => "REFUSED",
        }
    }
}

/// One run of a guest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunResult {
    /// The firmware the guest had.
    pub firmware: FirmwareMode,
    /// Its vCPU count.
    pub vcpus: usize,
    /// How the run ended.
    pub exit: RunExit,
    /// The system event's `data[0..ndata]`.
    pub exit_data: Vec<u64>,
    /// The vCPU that exited, for a system event.
    pub exit_vcpu: Option<usize>,
    /// What went wrong, for [`RunExit::Error`].
    pub error: Option<String>,
    /// Milliseconds from the start of `armfw-vmm run` to the first KVM_RUN (VM, memory,
    /// loading, device tree, vCPUs, vGIC; for armfw, probing the host).
    pub setup_ms: u64,
    /// Milliseconds from the first KVM_RUN to the guest init's first line.
    pub boot_to_init_ms: Option<u64>,
    /// Milliseconds from the first KVM_RUN to the end.
    pub total_ms: u64,
    /// The guest init's `@@GUEST` lines, in order: (key, value).
    pub guest: Vec<(String, String)>,
    /// Calls answered in userspace, by function (armfw only).
    pub userspace_calls: BTreeMap<String, u64>,
    /// The save or restore of a running VM, for a run that made one.
    #[serde(default)]
    pub migration: Option<Migration>,
}

/// What a save or restore of a running VM did and took (wall-clock milliseconds).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migration {
    /// The bundle's size in bytes.
    pub bundle_bytes: u64,
    /// The guest RAM it holds (the non-zero pages).
    pub memory_bytes: u64,
    /// Save: from the pause request until every vCPU was out of KVM_RUN.
    pub pause_ms: Option<u64>,
    /// Save: reading the state and RAM, encoding and writing the bundle.
    pub save_ms: Option<u64>,
    /// Restore: reading and checking the bundle, armfw's plan, until the VM was ready to run.
    pub restore_ms: Option<u64>,
    /// Restore: armfw's prediction for this host (`ok`, or why it refuses).
    pub prediction: Option<String>,
    /// The last `@@GUEST` value of the key the save paused at, as the guest printed it.
    pub paused_after: Option<String>,
    /// The CPU implementations armfw's engine reports through DISCOVER_IMPL_CPUS (at the
    /// save; after the restore).
    #[serde(default)]
    pub implementations: usize,
}

impl RunResult {
    /// A result with nothing in it yet.
    pub fn new(firmware: FirmwareMode, vcpus: usize) -> RunResult {
        RunResult {
            firmware,
            vcpus,
            exit: RunExit::Error,
            exit_data: Vec::new(),
            exit_vcpu: None,
            error: None,
            setup_ms: 0,
            boot_to_init_ms: None,
            total_ms: 0,
            guest: Vec::new(),
            userspace_calls: BTreeMap::new(),
            migration: None,
        }
    }

    /// The first value of `key` among the guest's lines.
    pub fn guest_value(&self, key: &str) -> Option<&str> {
        self.guest
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub fn guest_values<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.guest
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The number of calls answered in userspace.
    pub fn userspace_total(&self) -> u64 {
        self.userspace_calls.values().sum()
    }

    /// The result line: `@@VMM <json>`.
    pub fn to_line(&self) -> String {
        format!(
            "{RESULT_MARK} {}",
            serde_json::to_string(self).expect("a RunResult always serialises")
        )
    }

    /// Reads a result line back (`None` for any other line).
    pub fn from_line(line: &str) -> Option<RunResult> {
        let json = line.strip_prefix(RESULT_MARK)?.strip_prefix(' ')?;
        serde_json::from_str(json).ok()
    }
}

/// The name of an SMCCC function id as the report spells it: the function table's name
/// ([`armfw::abi::function::Info::name`]: `SMC64` forms with a `64` suffix), others in hex.
pub fn function_name(id: u32) -> String {
    FunctionId(id).name()
}

/// The calls of every vCPU, counted by function id, summed and named ([`function_name`]).
pub fn name_calls(
    per_vcpu: impl IntoIterator<Item = BTreeMap<FunctionId, u64>>,
) -> BTreeMap<String, u64> {
    let mut named = BTreeMap::new();
    for calls in per_vcpu {
        for (id, n) in calls {
            *named.entry(id.name()).or_insert(0) += n;
        }
    }
    named
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_result_line_round_trips() {
        let mut r = RunResult::new(FirmwareMode::Armfw, 2);
        r.exit = RunExit::Reset;
        r.exit_data = vec![0];
        r.guest.push(("init".into(), "3.10".into()));
        r.userspace_calls.insert("CPU_ON64".into(), 2);
        let line = r.to_line();
        assert!(line.starts_with("@@VMM {\"firmware\":\"armfw\""));
        assert_eq!(RunResult::from_line(&line), Some(r));
    }

    #[test]
    fn test_other_lines_are_not_results() {
        assert_eq!(RunResult::from_line("@@VMMX {}"), None);
        assert_eq!(RunResult::from_line("@@VMM {not json"), None);
    }

    #[test]
    fn test_guest_values_keep_order() {
        let mut r = RunResult::new(FirmwareMode::Kernel, 2);
        for (k, v) in [("dmesg", "a"), ("init", "1"), ("dmesg", "b")] {
            r.guest.push((k.into(), v.into()));
        }
        assert_eq!(r.guest_values("dmesg").collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(r.guest_value("init"), Some("1"));
        assert_eq!(r.guest_value("end"), None);
    }

    #[test]
    fn test_function_names_distinguish_smc64_forms() {
        assert_eq!(function_name(0xc400_0003), "CPU_ON64");
        assert_eq!(function_name(0x8400_0002), "CPU_OFF");
        assert_eq!(function_name(0x8200_0010), "0x82000010");
    }

    #[test]
    fn test_calls_of_every_vcpu_are_summed_by_name() {
        let vcpu0 = BTreeMap::from([(FunctionId(0xc400_0003), 1), (FunctionId(0x8400_0000), 1)]);
        let vcpu1 = BTreeMap::from([(FunctionId(0xc400_0003), 1), (FunctionId(0x8200_0010), 2)]);
        let named = name_calls([vcpu0, vcpu1]);
        assert_eq!(
            named,
            BTreeMap::from([
                ("CPU_ON64".to_string(), 2),
                ("PSCI_VERSION".to_string(), 1),
                ("0x82000010".to_string(), 2),
            ])
        );
    }

    #[test]
    fn test_firmware_mode_parses_its_names_only() {
        assert_eq!("armfw".parse(), Ok(FirmwareMode::Armfw));
        assert_eq!("kernel".parse(), Ok(FirmwareMode::Kernel));
        assert!("kvm".parse::<FirmwareMode>().is_err());
    }
}
