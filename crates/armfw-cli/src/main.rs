//! `armfw`: simulate, inspect and (on arm64 hosts) probe KVM's arm64 guest firmware.

mod baseline;
mod cmdline;
mod errors;
mod extras;
mod fleet;
mod input;
mod migrate;
mod output;
mod qemu;
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
#[command(after_help = "\
Exit codes (every command): 0 success; 1 a negative answer (check: incompatible; baseline: \
some moves refused; sim: a scenario ended with an error); 2 bad input or a failed write (one \
line on stderr; with --json also an armfw-error/1 document on stdout); 3 check: compatible \
only with armfw's plan; 141 standard output closed early (nothing on stderr).

Reads are limited to 32 MiB per file (a QEMU stream is read in place); - reads standard input. See docs/cli.md.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

impl Cli {
    /// Whether `--json` was given (every command has it; with it an error is also a JSON
    /// document on standard output).
    fn json(&self) -> bool {
        match &self.command {
            Command::Sim { json, .. }
            | Command::Regs { json, .. }
            | Command::Profiles { json }
            | Command::Probe { json, .. }
            | Command::Completions { json, .. }
            | Command::Man { json } => *json,
            Command::Save(a) => a.json,
            Command::Check(a) => a.json,
            Command::Baseline(a) => a.json,
            Command::Fleet(a) => a.json,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run scenario files and print one result document per scenario (JSON Lines).
    #[command(after_help = "\
Exit codes: 0 every scenario ran without an error result; 1 a scenario ended with an error \
(named on stderr); 2 bad input (a missing, unreadable, too big or invalid scenario or \
profile; nothing runs); 141 standard output closed early.")]
    Sim {
        /// A built-in profile name or a profile file (default: the newest built-in kernel).
        #[arg(long)]
        profile: Option<String>,
        /// Who answers: the model, or real KVM on this host (Linux on arm64 with /dev/kvm).
        #[arg(long, value_enum, default_value_t = BackendArg::Model)]
        backend: BackendArg,
        /// Scenario files, or folders whose *.json files are run in name order (- reads
        /// one scenario from standard input).
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// The output is always JSON Lines; with --json an error is also a JSON document.
        #[arg(long)]
        json: bool,
    },
    /// The registers of a host: every register of a vCPU (version-2 profiles), grouped by
    /// class, with its name, reset value, scope and SET rule; then the firmware registers with
    /// their accepted values.
    #[command(after_help = "\
Exit codes: 0 printed; 2 bad input (an unknown profile, an unreadable or invalid profile \
file); 141 standard output closed early.")]
    Regs {
        /// A built-in profile name or a profile file (default: the newest built-in kernel).
        #[arg(long)]
        profile: Option<String>,
        /// The vCPU features, comma-separated: pmu_v3, sve, ptrauth_address, ptrauth_generic
        /// (default: none).
        #[arg(long, value_parser = parse_features, default_value = "")]
        features: armfw::abi::CpuFeatures,
        /// Print JSON (format armfw-regs/2; armfw-regs/1 for a version-1 profile) instead of a
        /// table.
        #[arg(long)]
        json: bool,
    },
    /// The built-in host profiles.
    #[command(after_help = "\
Exit codes: 0 printed; 2 standard output cannot be written; 141 standard output closed early.")]
    Profiles {
        /// Print JSON (format armfw-profiles/1): the profiles themselves and the default.
        #[arg(long)]
        json: bool,
    },
    /// Write this host's profile (JSON) from the running kernel (Linux on arm64 with /dev/kvm).
    #[command(after_help = "\
Exit codes: 0 probed; 2 this host cannot be probed (no /dev/kvm, another target) or standard \
output cannot be written; 141 standard output closed early.")]
    Probe {
        /// The CPU model to record (emulated hosts cannot tell it from inside).
        #[arg(long)]
        cpu: Option<String>,
        /// The profile's name (default: linux-<release>-<cpu>).
        #[arg(long)]
        name: Option<String>,
        /// The output is always JSON; with --json an error is also a JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Create a VM on the model of a host, run it, and write its firmware state file.
    Save(migrate::SaveArgs),
    /// Print a shell completion script (e.g. `armfw completions bash > /etc/bash_completion.d/armfw`).
    #[command(
        after_help = "Exit codes: 0 printed; 2 standard output cannot be written; 141 standard output closed early."
    )]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
        /// With --json, an error is also a JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Print armfw's man pages (roff; e.g. `armfw man | man -l -`).
    #[command(
        after_help = "Exit codes: 0 printed; 2 standard output cannot be written; 141 standard output closed early."
    )]
    Man {
        /// With --json, an error is also a JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Can a VM's firmware state move to a host? Verdict, per-register findings, plan.
    Check(migrate::CheckArgs),
    /// The firmware configuration every host of a pool accepts.
    Baseline(baseline::BaselineArgs),
    /// Which hosts a VM of each host can move to, and the groups it moves freely within.
    Fleet(fleet::FleetArgs),
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
            let message = format!(
                "{} (see 'armfw --help')",
                cmdline::clap_error_line(&e, true)
            );
            output::warn(&message);
            if std::env::args_os().any(|a| a == "--json") {
                errors::Report::usage(message, 2).print();
            }
            return ExitCode::from(2);
        }
    };
    let json = cli.json();
    match run(cli).and_then(|code| output::flush().map(|()| code)) {
        Ok(code) => code,
        Err(e) => {
            if e.downcast_ref::<output::StdoutError>()
                .is_some_and(output::StdoutError::is_broken_pipe)
            {
                return ExitCode::from(output::EXIT_BROKEN_PIPE);
            }
            let message = cmdline::one_line(&format!("{e:#}"));
            output::warn(&message);
            if json {
                errors::Report::of(&e, message, 2).print();
            }
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let json = cli.json();
    match cli.command {
        Command::Sim {
            profile,
            backend,
            scenarios,
            ..
        } => sim::run(profile.as_deref(), backend, &scenarios),
        Command::Regs {
            profile, features, ..
        } => {
            let p = load_profile(profile.as_deref())?;
            tables::regs(&p, features, json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Profiles { .. } => {
            tables::profiles(json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Probe { cpu, name, .. } => probe(cpu, name),
        Command::Save(args) => migrate::save(args),
        Command::Completions { shell, .. } => {
            extras::completions(shell)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { .. } => {
            extras::man()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check(args) => migrate::check(args),
        Command::Baseline(args) => baseline::baseline(args),
        Command::Fleet(args) => fleet::fleet(args),
    }
}

/// A profile by built-in name or file path. A file path is told apart by its form: it
/// contains a `/`, ends in `.json`, or is `-` (standard input); anything else is a built-in
/// name, even where a file of that name exists (give `./NAME` for the file). The default is
/// the built-in profile of the newest kernel, ties broken by name (`armfw profiles` marks it).
fn load_profile(arg: Option<&str>) -> Result<Profile> {
    let Some(arg) = arg else {
        return armfw::profile::default_profile().context("no built-in profiles");
    };
    let path = Path::new(arg);
    if arg.ends_with(".json") || arg.contains('/') || input::is_stdin(path) {
        let text = input::read_text(path)?;
        return Profile::from_json(&text).with_context(|| errors::InFile::new(path));
    }
    armfw::profile::builtin_named(arg).map_err(|e| {
        let builtin = armfw::profile::builtin();
        let names = builtin.iter().map(|p| p.name());
        let hint = match extras::closest(arg, names) {
            Some(n) => format!("did you mean {n:?}?"),
            None if path.exists() => format!("to read the file {arg}, give ./{arg}"),
            None => String::new(),
        };
        anyhow::Error::new(errors::Hinted { error: e, hint })
    })
}

#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
fn probe(cpu: Option<String>, name: Option<String>) -> Result<ExitCode> {
    let profile = armfw_kvm::probe::probe(cpu.as_deref(), name.as_deref())?;
    output::line(&serde_json::to_string_pretty(&profile.to_json())?)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(all(target_os = "linux", target_arch = "aarch64")))]
fn probe(_cpu: Option<String>, _name: Option<String>) -> Result<ExitCode> {
    anyhow::bail!(
        "probe needs Linux on arm64 with /dev/kvm; this armfw was built for another target"
    )
}

/// `--features`: comma-separated vCPU feature names, each once.
pub(crate) fn parse_features(text: &str) -> Result<armfw::abi::CpuFeatures, String> {
    let mut set = armfw::abi::CpuFeatures::NONE;
    for name in text.split(',').filter(|n| !n.is_empty()) {
        let f = armfw::abi::CpuFeature::from_name(name).ok_or_else(|| {
            format!(
                "{name:?} is not a vCPU feature (pmu_v3, sve, ptrauth_address, ptrauth_generic)"
            )
        })?;
        if set.has(f) {
            return Err(format!("{name:?} is listed twice"));
        }
        set = set.with(f);
    }
    Ok(set)
}
