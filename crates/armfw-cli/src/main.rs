//! `armfw`: simulate, inspect and (on arm64 hosts) probe KVM's arm64 guest firmware.

mod migrate;
mod sim;
mod tables;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use armfw::Profile;
use clap::{Parser, Subcommand, ValueEnum};

/// KVM's arm64 guest firmware (PSCI, SMCCC, firmware pseudo-registers), modelled per kernel
/// release and host.
#[derive(Debug, Parser)]
#[command(name = "armfw", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run scenario files and print one result document per scenario (JSON Lines).
    Sim {
        /// A built-in profile name or a profile file (default: the newest built-in kernel).
        #[arg(long)]
        profile: Option<String>,
        /// Who answers: the model, or real KVM on this host (Linux on arm64 with /dev/kvm).
        #[arg(long, value_enum, default_value_t = BackendArg::Model)]
        backend: BackendArg,
        /// Scenario files, or folders whose *.json files are run in name order.
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
    },
    /// The firmware registers of a host: id, name, default, accepted values, meaning.
    Regs {
        /// A built-in profile name or a profile file (default: the newest built-in kernel).
        #[arg(long)]
        profile: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The built-in host profiles.
    Profiles {
        /// Print the profiles themselves as a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Write this host's profile (JSON) from the running kernel (Linux on arm64 with /dev/kvm).
    Probe {
        /// The CPU model to record (emulated hosts cannot tell it from inside).
        #[arg(long)]
        cpu: Option<String>,
        /// The profile's name (default: linux-<release>-<cpu>).
        #[arg(long)]
        name: Option<String>,
    },
    /// Create a VM on the model of a host, run it, and write its firmware state file.
    Save(migrate::SaveArgs),
    /// Can a VM's firmware state move to a host? Verdict, per-register findings, plan.
    Check(migrate::CheckArgs),
    /// The firmware configuration every host of a pool accepts.
    Baseline(migrate::BaselineArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BackendArg {
    Model,
    Kvm,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        // A bad argument: one line, like every other bad input.
        Err(e) => {
            use clap::error::ErrorKind;
            let text = e.render().to_string();
            let first = match e.kind() {
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                | ErrorKind::MissingSubcommand => "no command given",
                // clap's first paragraph (e.g. the missing arguments' names) as one line.
                _ => &text
                    .split("\n\n")
                    .next()
                    .map(one_line)
                    .unwrap_or_else(|| "bad arguments".into()),
            };
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("armfw: {first} (see 'armfw --help')");
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("armfw: {}", one_line(&format!("{e:#}")));
            ExitCode::from(2)
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Sim {
            profile,
            backend,
            scenarios,
        } => sim::run(profile.as_deref(), backend, &scenarios),
        Command::Regs { profile, json } => {
            let p = load_profile(profile.as_deref())?;
            tables::regs(&p, json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Profiles { json } => {
            tables::profiles(json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Probe { cpu, name } => probe(cpu, name),
        Command::Save(args) => migrate::save(args),
        Command::Check(args) => migrate::check(args),
        Command::Baseline(args) => migrate::baseline(args),
    }
}

/// A profile by built-in name or file path; the default is the newest built-in kernel.
fn load_profile(arg: Option<&str>) -> Result<Profile> {
    let Some(arg) = arg else {
        return armfw::profile::default_profile().context("no built-in profiles");
    };
    let path = Path::new(arg);
    if path.exists() || arg.ends_with(".json") || arg.contains('/') {
        let text = std::fs::read_to_string(path).with_context(|| format!("{arg}: cannot read"))?;
        return Profile::from_json(&text).with_context(|| arg.to_string());
    }
    Ok(armfw::profile::builtin_named(arg)?)
}

#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
fn probe(cpu: Option<String>, name: Option<String>) -> Result<ExitCode> {
    let profile = armfw_kvm::probe::probe(cpu.as_deref(), name.as_deref())?;
    println!("{}", serde_json::to_string_pretty(&profile.to_json())?);
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(all(target_os = "linux", target_arch = "aarch64")))]
fn probe(_cpu: Option<String>, _name: Option<String>) -> Result<ExitCode> {
    anyhow::bail!(
        "probe needs Linux on arm64 with /dev/kvm; this armfw was built for another target"
    )
}
