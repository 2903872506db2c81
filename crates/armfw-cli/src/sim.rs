//! `armfw sim`.

use crate::output::outln;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use armfw::scenario::{self, Backend, ModelBackend, Scenario, StepResult};

use crate::BackendArg;

/// The scenario files named by `args`: files as given, folders expanded to their `*.json`
/// files in name order.
pub fn expand(args: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for a in args {
        if a.is_dir() {
            files.extend(json_files(a)?);
        } else {
            files.push(a.clone());
        }
    }
    if files.is_empty() {
        bail!(
            "no scenario files in {}",
            args.iter()
                .map(|a| a.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(files)
}

/// The `*.json` files directly in `dir`, in name order.
pub fn json_files(dir: &Path) -> Result<Vec<PathBuf>> {
    crate::cmdline::json_files(dir)
        .with_context(|| format!("{}: cannot read folder", dir.display()))
}

/// Read and parse every scenario before any runs, so that a bad file changes nothing.
pub fn load(files: &[PathBuf]) -> Result<Vec<Scenario>> {
    files.iter().map(|f| load_one(f)).collect()
}

fn load_one(path: &Path) -> Result<Scenario> {
    let text = crate::input::read_text(path)?;
    // A scenario from standard input has no file name to match its own.
    let stem = (!crate::input::is_stdin(path))
        .then(|| path.file_stem().and_then(|s| s.to_str()))
        .flatten();
    scenario::parse(&text, stem).with_context(|| crate::errors::InFile::new(path))
}

pub fn run(profile: Option<&str>, backend: BackendArg, args: &[PathBuf]) -> Result<ExitCode> {
    let files = expand(args)?;
    let scenarios = load(&files)?;
    let mut backend: Box<dyn Backend> = match backend {
        BackendArg::Model => Box::new(ModelBackend::new(&crate::load_profile(profile)?)),
        BackendArg::Kvm => kvm_backend(profile)?,
    };
    let mut code = ExitCode::SUCCESS;
    for (file, s) in files.iter().zip(&scenarios) {
        let doc = scenario::run(s, backend.as_mut());
        outln!("{}", serde_json::to_string(&doc)?)?;
        if let Some(StepResult::Error(e)) = doc
            .results
            .iter()
            .find(|r| matches!(r, StepResult::Error(_)))
        {
            crate::output::warn(&format!(
                "{}: {}",
                file.display(),
                crate::cmdline::one_line(e)
            ));
            code = ExitCode::from(1);
        }
    }
    Ok(code)
}

#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
fn kvm_backend(profile: Option<&str>) -> Result<Box<dyn Backend>> {
    if profile.is_some() {
        bail!("--profile is for the model; the kvm backend answers as this host does");
    }
    Ok(Box::new(armfw_kvm::scenario::KvmBackend::new()?))
}

#[cfg(not(all(target_os = "linux", target_arch = "aarch64")))]
fn kvm_backend(_profile: Option<&str>) -> Result<Box<dyn Backend>> {
    bail!(
        "--backend kvm needs Linux on arm64 with /dev/kvm; this armfw was built for another target"
    )
}
