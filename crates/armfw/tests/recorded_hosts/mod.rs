//! What the tests that read the repository's recorded real results share: where the
//! repository is, and which hosts `conformance/run --record` recorded.

use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The hosts under scenarios/expected/, sorted.
pub fn recorded_hosts() -> Vec<String> {
    let dir = repo().join("scenarios/expected");
    let mut hosts: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    hosts.sort();
    hosts
}
