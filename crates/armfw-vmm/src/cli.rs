// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The `armfw-vmm` command line (Linux/aarch64).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::plan::{GuestAction, guest_bootargs};
use crate::report::{FirmwareMode, RunExit};
use crate::vmm::{self, VmConfig};

/// A minimal arm64 VMM: boots a Linux guest on KVM with KVM's in-kernel firmware or with
/// armfw's userspace firmware. As PID 1 it runs the plan on the kernel command line
/// (conformance/linux-guest).
#[derive(Debug, Parser)]
#[command(name = "armfw-vmm", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Boot a guest (or restore a saved one) until it powers off, resets, is saved or the
    /// time limit runs out. Exit status 0 after SYSTEM_OFF, SYSTEM_RESET or a save, 3 when
    /// armfw refuses to restore the bundle here, 1 otherwise.
    Run(RunArgs),
}

/// `armfw-vmm run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The arm64 kernel (an uncompressed `Image`).
    #[arg(long, required_unless_present = "restore")]
    pub kernel: Option<PathBuf>,
    /// The initramfs.
    #[arg(long)]
    pub initrd: Option<PathBuf>,
    /// vCPUs.
    #[arg(long, default_value_t = 2)]
    pub vcpus: usize,
    /// RAM in MiB.
    #[arg(long, default_value_t = 256)]
    pub memory: u64,
    /// `kernel` (KVM's in-kernel PSCI/SMCCC) or `armfw` (armfw's engine in this process,
    /// through the SMCCC filter; Linux 6.4 and later).
    #[arg(long, default_value = "kernel")]
    pub firmware: FirmwareMode,
    /// Passed to the guest as `armfw.action=`: what its init ends with.
    #[arg(long, default_value = "poweroff")]
    pub action: GuestAction,
    /// More guest kernel arguments.
    #[arg(long, default_value = "")]
    pub append: String,
    /// Seconds before the run is given up.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// The host's CPU model, to name the probed profile after (armfw mode).
    #[arg(long)]
    pub cpu: Option<String>,
    /// Printed before each line of the guest's console.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Print the result as one `@@VMM <json>` line on stdout at the end.
    #[arg(long)]
    pub result: bool,
    /// Pause the VM when the guest prints `@@GUEST KEY VALUE`, and save it (`--save`).
    #[arg(long, value_name = "KEY=VALUE", requires = "save", value_parser = parse_pause)]
    pub pause_at: Option<(String, String)>,
    /// Where the paused VM's bundle goes (a file, or a virtio-serial port).
    #[arg(long, requires = "pause_at")]
    pub save: Option<PathBuf>,
    /// Restore the running VM a bundle holds and run it on (instead of `--kernel`); armfw's
    /// plan for this host is asked first, and a refused move creates nothing (exit 3).
    #[arg(long, conflicts_with_all = ["kernel", "initrd", "save", "baseline"])]
    pub restore: Option<PathBuf>,
    /// Create the VM with the baseline of the pool whose host profiles (`*.json`, this
    /// host's among them) are in this folder: the pool's CPU and firmware from the guest's
    /// first instruction.
    #[arg(long, value_name = "DIR")]
    pub baseline: Option<PathBuf>,
}

fn parse_pause(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !k.contains(' ') && !v.contains(' ') => {
            Ok((k.to_string(), v.to_string()))
        }
        _ => Err(format!("`{s}`: KEY=VALUE, without spaces")),
    }
}

/// The command's entry point (when not PID 1).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run(&args),
    }
}

fn run(args: &RunArgs) -> ExitCode {
    let bootargs = match guest_bootargs(args.action, &args.append) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("armfw-vmm: guest command line: {e}");
            return ExitCode::from(2);
        }
    };
    let result = vmm::run(&VmConfig {
        kernel: args.kernel.clone().unwrap_or_default(),
        initrd: args.initrd.clone(),
        vcpus: args.vcpus,
        memory_mib: args.memory,
        firmware: args.firmware,
        bootargs,
        timeout: Duration::from_secs(args.timeout),
        cpu: args.cpu.clone(),
        prefix: args.prefix.clone(),
        pause_at: args.pause_at.clone(),
        save_to: args.save.clone(),
        restore_from: args.restore.clone(),
        baseline: args.baseline.clone(),
    });
    eprintln!(
        "armfw-vmm: {} firmware: {}{}{} after {} ms (set-up {} ms, init at {}), {} calls answered in userspace",
        result.firmware,
        result.exit.name(),
        if result.exit_data.is_empty() {
            String::new()
        } else {
            format!(" {:?}", result.exit_data)
        },
        result
            .error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default(),
        result.total_ms,
        result.setup_ms,
        result
            .boot_to_init_ms
            .map_or("-".into(), |ms| format!("{ms} ms")),
        result.userspace_total(),
    );
    if args.result {
        println!("{}", result.to_line());
    }
    let code = match result.exit {
        RunExit::Shutdown | RunExit::Reset | RunExit::Saved => 0,
        RunExit::Refused => 3,
        _ => 1,
    };
    // The VM and its vCPU threads end with the process.
    std::process::exit(code)
}
