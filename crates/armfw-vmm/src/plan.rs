// SPDX-License-Identifier: Apache-2.0 OR MIT
//! What `armfw-vmm` does as PID 1 of an emulated host, read from the host kernel's command
//! line, and the guest kernel's command line.
//!
//! | host command-line key | meaning | default |
//! | --- | --- | --- |
//! | `armfw.guest=kernel,armfw` | the firmware modes, in order | `kernel,armfw` |
//! | `armfw.guest-actions=poweroff,reboot` | what the guest's init ends with, per mode | `poweroff,reboot` |
//! | `armfw.guest-vcpus=N` | the guest's vCPUs | 2 |
//! | `armfw.guest-memory=MIB` | the guest's RAM in MiB | 256 |
//! | `armfw.guest-timeout=S` | seconds before a run is given up | 120 |
//! | `armfw.guest-kernel=PATH` | the guest's arm64 Image | `/armfw/Image` |
//! | `armfw.guest-initrd=PATH` | the guest's initramfs | `/armfw/guest-initrd.cpio` |
//! | `armfw.migrate=save` | boot the guest (first firmware mode), pause it when it prints `@@GUEST tick N`, save it to the virtio-serial port named `armfw-bundle` | (none: the runs above) |
//! | `armfw.migrate=restore` | restore `/armfw/bundle` and run it on; compare with the save's record in `/armfw/source.jsonl` | |
//! | `armfw.migrate-pause=N` | the tick the save pauses at | 6 |
//! | `armfw.migrate-baseline=DIR` | create the VM with the baseline of the pool in DIR (save) | none |
//!
//! Values have no spaces (the kernel splits its command line at spaces).

use std::fmt;
use std::str::FromStr;

use linux_loader::cmdline::Cmdline;
use thiserror::Error;

use crate::layout::MAX_VCPUS;
use crate::report::FirmwareMode;

/// What the guest's init does at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GuestAction {
    /// `poweroff -f`: PSCI SYSTEM_OFF.
    Poweroff,
    /// `reboot -f`: PSCI SYSTEM_RESET.
    Reboot,
}

impl GuestAction {
    /// `poweroff` or `reboot`, as the guest's command line says it (`armfw.action=`).
    pub const fn name(self) -> &'static str {
        match self {
            GuestAction::Poweroff => "poweroff",
            GuestAction::Reboot => "reboot",
        }
    }
}

impl fmt::Display for GuestAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for GuestAction {
    type Err = String;

    fn from_str(s: &str) -> Result<GuestAction, String> {
        match s {
            "poweroff" => Ok(GuestAction::Poweroff),
            "reboot" => Ok(GuestAction::Reboot),
            _ => Err(format!("action is `poweroff` or `reboot`, not `{s}`")),
        }
    }
}

/// A bad key on the host's command line.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{key}={value}: {why}")]
pub struct PlanError {
    /// The key.
    pub key: &'static str,
    /// Its value.
    pub value: String,
    /// What is wrong with it.
    pub why: String,
}

/// Which half of a move of a running guest PID 1 makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MigrateRole {
    /// Boot, pause, save.
    Save,
    /// Restore, run on, check.
    Restore,
}

impl MigrateRole {
    /// `save` or `restore`.
    pub const fn name(self) -> &'static str {
        match self {
            MigrateRole::Save => "save",
            MigrateRole::Restore => "restore",
        }
    }
}

impl FromStr for MigrateRole {
    type Err = String;

    fn from_str(s: &str) -> Result<MigrateRole, String> {
        match s {
            "save" => Ok(MigrateRole::Save),
            "restore" => Ok(MigrateRole::Restore),
            _ => Err(format!("`save` or `restore`, not `{s}`")),
        }
    }
}

/// The runs PID 1 makes: every action in every firmware mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The firmware modes, in order.
    pub firmwares: Vec<FirmwareMode>,
    /// The actions, in order, for each mode.
    pub actions: Vec<GuestAction>,
    /// The guest's vCPUs.
    pub vcpus: usize,
    /// The guest's RAM in MiB.
    pub memory_mib: u64,
    /// Seconds before a run is given up.
    pub timeout_s: u64,
    /// The guest's kernel.
    pub kernel: String,
    /// The guest's initramfs.
    pub initrd: String,
    /// A move of a running guest instead of the runs.
    pub migrate: Option<MigrateRole>,
    /// The tick the save pauses at.
    pub pause_tick: u64,
    /// The pool folder of the save's baseline.
    pub baseline: Option<String>,
}

impl Default for Plan {
    fn default() -> Plan {
        Plan {
            firmwares: vec![FirmwareMode::Kernel, FirmwareMode::Armfw],
            actions: vec![GuestAction::Poweroff, GuestAction::Reboot],
            vcpus: 2,
            memory_mib: 256,
            timeout_s: 120,
            kernel: "/armfw/Image".into(),
            initrd: "/armfw/guest-initrd.cpio".into(),
            migrate: None,
            pause_tick: 6,
            baseline: None,
        }
    }
}

impl Plan {
    /// The plan a kernel command line asks for (keys not given keep their defaults).
    pub fn from_cmdline(cmdline: &str) -> Result<Plan, PlanError> {
        let mut plan = Plan::default();
        let value = |key: &str| {
            cmdline.split_whitespace().find_map(|w| {
                w.strip_prefix(key)
                    .and_then(|rest| rest.strip_prefix('='))
                    .map(str::to_string)
            })
        };
        fn list<T: FromStr<Err = String>>(
            key: &'static str,
            value: &str,
        ) -> Result<Vec<T>, PlanError> {
            let items = value
                .split(',')
                .map(str::parse)
                .collect::<Result<Vec<T>, String>>()
                .map_err(|why| PlanError {
                    key,
                    value: value.into(),
                    why,
                })?;
            Ok(items)
        }
        fn number(key: &'static str, value: &str, min: u64, max: u64) -> Result<u64, PlanError> {
            match value.parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(PlanError {
                    key,
                    value: value.into(),
                    why: format!("not a number from {min} to {max}"),
                }),
            }
        }
        if let Some(v) = value("armfw.guest") {
            plan.firmwares = list("armfw.guest", &v)?;
        }
        if let Some(v) = value("armfw.guest-actions") {
            plan.actions = list("armfw.guest-actions", &v)?;
        }
        if let Some(v) = value("armfw.guest-vcpus") {
            #[expect(
                clippy::cast_possible_truncation,
                reason = "number() bounds it by MAX_VCPUS, itself a usize"
            )]
            let n = number("armfw.guest-vcpus", &v, 1, MAX_VCPUS as u64)? as usize;
            plan.vcpus = n;
        }
        if let Some(v) = value("armfw.guest-memory") {
            plan.memory_mib = number("armfw.guest-memory", &v, 64, 4096)?;
        }
        if let Some(v) = value("armfw.guest-timeout") {
            plan.timeout_s = number("armfw.guest-timeout", &v, 1, 3600)?;
        }
        if let Some(v) = value("armfw.guest-kernel") {
            plan.kernel = v;
        }
        if let Some(v) = value("armfw.guest-initrd") {
            plan.initrd = v;
        }
        if let Some(v) = value("armfw.migrate") {
            plan.migrate = Some(v.parse().map_err(|why| PlanError {
                key: "armfw.migrate",
                value: v.clone(),
                why,
            })?);
        }
        if let Some(v) = value("armfw.migrate-pause") {
            plan.pause_tick = number("armfw.migrate-pause", &v, 1, 1000)?;
        }
        if let Some(v) = value("armfw.migrate-baseline") {
            plan.baseline = Some(v);
        }
        Ok(plan)
    }
}

/// The guest kernel's command line: the 16550 console, `quiet`, no reboot on panic (a
/// panicking guest must not pass for a rebooting one), one 8250 port, `armfw.action=` for
/// the init, then `extra` (space-separated, may be empty).
pub fn guest_bootargs(action: GuestAction, extra: &str) -> Result<String, String> {
    let mut cmdline = Cmdline::new(2048).map_err(|e| e.to_string())?;
    for arg in [
        "console=ttyS0",
        "quiet",
        "panic=0",
        "8250.nr_uarts=1",
        &format!("armfw.action={action}"),
    ]
    .into_iter()
    .chain(extra.split_whitespace())
    {
        cmdline.insert_str(arg).map_err(|e| format!("{arg}: {e}"))?;
    }
    let c = cmdline.as_cstring().map_err(|e| e.to_string())?;
    Ok(c.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_empty_cmdline_gives_the_default_plan() {
        let plan = Plan::from_cmdline("console=ttyAMA0 quiet armfw.cpu=max").unwrap();
        assert_eq!(plan, Plan::default());
        assert_eq!(plan.vcpus, 2);
        assert_eq!(
            plan.firmwares,
            vec![FirmwareMode::Kernel, FirmwareMode::Armfw]
        );
    }

    #[test]
    fn test_keys_override_the_defaults() {
        let plan = Plan::from_cmdline(
            "armfw.guest=kernel armfw.guest-actions=reboot armfw.guest-vcpus=4 \
             armfw.guest-memory=512 armfw.guest-timeout=30 armfw.guest-kernel=/k \
             armfw.guest-initrd=/i\n",
        )
        .unwrap();
        assert_eq!(plan.firmwares, vec![FirmwareMode::Kernel]);
        assert_eq!(plan.actions, vec![GuestAction::Reboot]);
        assert_eq!((plan.vcpus, plan.memory_mib, plan.timeout_s), (4, 512, 30));
        assert_eq!((plan.kernel.as_str(), plan.initrd.as_str()), ("/k", "/i"));
    }

    #[test]
    fn test_unknown_firmware_names_the_key() {
        let err = Plan::from_cmdline("armfw.guest=kernel,kvm").unwrap_err();
        assert_eq!(err.key, "armfw.guest");
        assert_eq!(err.value, "kernel,kvm");
    }

    #[test]
    fn test_migrate_keys() {
        let plan = Plan::from_cmdline(
            "armfw.migrate=save armfw.migrate-pause=9 armfw.migrate-baseline=/p",
        )
        .unwrap();
        assert_eq!(plan.migrate, Some(MigrateRole::Save));
        assert_eq!((plan.pause_tick, plan.baseline.as_deref()), (9, Some("/p")));
        let err = Plan::from_cmdline("armfw.migrate=load").unwrap_err();
        assert_eq!(
            err.to_string(),
            "armfw.migrate=load: `save` or `restore`, not `load`"
        );
        assert_eq!(Plan::from_cmdline("").unwrap().migrate, None);
    }

    #[test]
    fn test_zero_vcpus_is_refused() {
        let err = Plan::from_cmdline("armfw.guest-vcpus=0").unwrap_err();
        assert_eq!(err.key, "armfw.guest-vcpus");
    }

    #[test]
    fn test_guest_key_is_not_confused_with_longer_keys() {
        let plan = Plan::from_cmdline("armfw.guest-vcpus=3").unwrap();
        assert_eq!(plan.firmwares, Plan::default().firmwares);
    }

    #[test]
    fn test_guest_bootargs_carry_console_action_and_extra() {
        assert_eq!(
            guest_bootargs(GuestAction::Reboot, " earlycon  loglevel=7 ").unwrap(),
            "console=ttyS0 quiet panic=0 8250.nr_uarts=1 armfw.action=reboot earlycon loglevel=7"
        );
    }
}
