// SPDX-License-Identifier: Apache-2.0 OR MIT
//! `armfw-harness`: armfw's test harness (see the library documentation). As PID 1 of an
//! emulated host it runs the in-host program `armfw.mode=` names; otherwise it runs a
//! command.

#[path = "../../armfw-cli/src/cmdline.rs"]
mod cmdline;
mod conformance;
mod error;
mod migrations;
#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
mod pid1;
#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
mod qemu_client;
mod qemu_matrix;
#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
mod smoke;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use armfw_harness::initramfs::Archive;
use armfw_harness::{hosts, records};
use clap::{Parser, Subcommand};

use crate::error::{Context, Result, bail};

/// armfw's test harness: the in-host programs of conformance/ and the steps the scripts run
/// around the boots.
#[derive(Debug, Parser)]
#[command(name = "armfw-harness", about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The hosts of a host spec (SERIES:CPU,...; `all` is every series 6.1, 6.12, 7 or every
    /// CPU of max, cortex-a72, neoverse-n1, cortex-a53), one `SERIES:CPU` a line.
    Hosts {
        /// The spec.
        spec: String,
    },
    /// The records of a console log, one JSON value a line; exit 1 (and why on stderr)
    /// unless they are complete (numbered without a gap, with the end marker).
    Records {
        /// The console log.
        log: PathBuf,
    },
    /// Write an initramfs (cpio, newc): /dev, /dev/console, /proc, /sys, /armfw, the
    /// contents of --tree DIR, /init (a copy of --init BINARY), and each FILE under /armfw/
    /// (directories whole).
    Initramfs {
        /// The archive to write.
        out: PathBuf,
        /// The program to run as /init.
        #[arg(long)]
        init: Option<PathBuf>,
        /// A folder whose contents go to the archive's root.
        #[arg(long)]
        tree: Option<PathBuf>,
        /// Files or folders to put under /armfw/.
        files: Vec<PathBuf>,
    },
    /// The conformance harness's in-host half on any arm64 host with /dev/kvm: probe it,
    /// run every scenario set under ROOT on real KVM and on the model, print records.
    ConformanceGuest {
        /// Folder of scenario sets (one folder each; `project` first).
        root: PathBuf,
        /// Also run every scenario with armfw's userspace firmware and compare (swap test).
        #[arg(long)]
        swap: bool,
    },
    /// The smoke program (conformance/boot-smoke) on any arm64 host with /dev/kvm.
    Smoke,
    /// The conformance harness, after the boots: the table, the diffs and the count line.
    ConformanceReport {
        /// A scenario set: NAME=DIR (repeatable); every host must answer each file of each.
        #[arg(long = "set", value_parser = parse_set, required = true)]
        sets: Vec<(String, PathBuf)>,
        /// Write each host's profile and real documents under DIR/HOST/.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Record the real results in the repository at ROOT:
        /// crates/armfw/profiles/HOST.json and scenarios/expected/HOST/ (the `project` set).
        #[arg(long)]
        record: Option<PathBuf>,
        /// Each host's records (HOST.jsonl), or HOST.failed holding why it gave none.
        #[arg(required = true)]
        hosts: Vec<PathBuf>,
    },
    /// The real-migration harness, after the boots: the rows as a markdown table, the JSON
    /// report, and the count line.
    /// The QEMU client harness, after the boots: each move's prediction against QEMU's
    /// outcome, a matrix per QEMU version and CPU model, and `qemu: N passed, M failed`.
    QemuMatrix {
        /// The moves (JSON Lines: suite, qemu, cpu, from, to, save, check, load).
        rows: PathBuf,
    },
    MigrationsReport {
        /// Write the rows as JSON to FILE.
        #[arg(long)]
        json: Option<PathBuf>,
        /// The `restore` boots' records (JSON Lines).
        #[arg(required = true)]
        records: Vec<PathBuf>,
    },
}

fn parse_set(s: &str) -> std::result::Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((name, dir)) if !name.is_empty() && !dir.is_empty() => {
            Ok((name.to_string(), PathBuf::from(dir)))
        }
        _ => Err(format!("'{s}' is not NAME=DIR")),
    }
}

fn main() -> ExitCode {
    #[cfg(all(target_os = "linux", target_arch = "aarch64"))]
    if armfw_kvm::init::is_pid1() {
        return pid1::main();
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        // A bad argument: one line.
        Err(e) => {
            let first = cmdline::clap_error_line(&e, false);
            eprintln!("armfw-harness: {first} (see 'armfw-harness --help')");
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("armfw-harness: {}", cmdline::one_line(&e.to_string()));
            ExitCode::from(2)
        }
    }
}

/// Text as one line (runs of white space become one space).
fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Hosts { spec } => {
            for h in hosts::parse(&spec)? {
                println!("{h}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Records { log } => print_records(&log),
        Command::Initramfs {
            out,
            init,
            tree,
            files,
        } => {
            initramfs(&out, init.as_deref(), tree.as_deref(), &files)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::ConformanceGuest { root, swap } => conformance_guest(&root, swap),
        Command::Smoke => smoke(),
        Command::ConformanceReport {
            sets,
            out,
            record,
            hosts,
        } => conformance::report(&sets, &hosts, out.as_deref(), record.as_deref()),
        Command::QemuMatrix { rows } => qemu_matrix::report(&rows),
        Command::MigrationsReport { json, records } => {
            migrations::report(&records, json.as_deref())
        }
    }
}

/// `armfw-harness records LOG`: the payloads, each checked to be JSON, one a line.
fn print_records(log: &Path) -> Result<ExitCode> {
    let bytes = std::fs::read(log).with_context(|| format!("{}: cannot read", log.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    match records::read_as::<serde_json::Value>(&text) {
        Ok(values) => {
            let mut out = String::new();
            for v in values {
                out.push_str(&v.to_string());
                out.push('\n');
            }
            print!("{out}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("records: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// `armfw-harness initramfs`.
fn initramfs(
    out: &Path,
    init: Option<&Path>,
    tree: Option<&Path>,
    files: &[PathBuf],
) -> Result<()> {
    let mut a = Archive::new();
    for d in ["dev", "proc", "sys", "armfw"] {
        a.dir(d);
    }
    a.char_device("dev/console", 0o600, 5, 1);
    if let Some(tree) = tree {
        let rd =
            std::fs::read_dir(tree).with_context(|| format!("{}: cannot read", tree.display()))?;
        let mut children: Vec<_> = rd.filter_map(|e| e.ok()).collect();
        children.sort_by_key(|e| e.file_name());
        for c in children {
            let name = c.file_name().to_string_lossy().into_owned();
            a.copy(&name, &c.path())
                .with_context(|| format!("{}: cannot read", c.path().display()))?;
        }
    }
    if let Some(init) = init {
        let data =
            std::fs::read(init).with_context(|| format!("{}: cannot read", init.display()))?;
        a.file("init", 0o755, data);
    }
    for f in files {
        let Some(name) = f.file_name() else {
            bail!("{}: no file name", f.display());
        };
        a.copy(&format!("armfw/{}", name.to_string_lossy()), f)
            .with_context(|| format!("{}: cannot read", f.display()))?;
    }
    let tmp = out.with_extension("tmp");
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create", dir.display()))?;
    }
    let mut w = std::io::BufWriter::new(
        std::fs::File::create(&tmp).with_context(|| format!("{}: cannot write", tmp.display()))?,
    );
    a.write_to(&mut w)
        .and_then(|()| std::io::Write::flush(&mut w))
        .with_context(|| format!("{}: cannot write", tmp.display()))?;
    drop(w);
    std::fs::rename(&tmp, out).with_context(|| format!("{}: cannot write", out.display()))
}

#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
fn conformance_guest(root: &Path, swap: bool) -> Result<ExitCode> {
    Ok(conformance::guest(root, swap))
}

#[cfg(not(all(target_os = "linux", target_arch = "aarch64")))]
fn conformance_guest(_root: &Path, _swap: bool) -> Result<ExitCode> {
    bail!("conformance-guest needs Linux on arm64 with /dev/kvm; this build is for another target")
}

#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
fn smoke() -> Result<ExitCode> {
    smoke::main(false);
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(all(target_os = "linux", target_arch = "aarch64")))]
fn smoke() -> Result<ExitCode> {
    bail!("smoke needs Linux on arm64 with /dev/kvm; this build is for another target")
}
