//! Embeds the committed host profiles (`crates/armfw/profiles/*.json`, in this crate) as
//! the built-in profiles. The folder ships with the crate; a build without it, or with no
//! profile in it, fails here rather than giving a crate with no built-in profiles.

use std::{env, fs, path::PathBuf};

fn main() {
    let manifest =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let dir = manifest.join("profiles");
    println!("cargo:rerun-if-changed={}", dir.display());
    let rd = fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "armfw: the built-in profiles folder {} cannot be read ({e}); \
             it must hold the committed host profiles (*.json)",
            dir.display()
        )
    });
    let mut entries: Vec<(String, PathBuf)> = Vec::new();
    for entry in rd {
        let path = entry
            .unwrap_or_else(|e| panic!("armfw: cannot list {}: {e}", dir.display()))
            .path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_else(|| panic!("armfw: {} has no UTF-8 name", path.display()))
            .to_string();
        let path = path
            .canonicalize()
            .unwrap_or_else(|e| panic!("armfw: {}: {e}", path.display()));
        entries.push((name, path));
    }
    assert!(
        !entries.is_empty(),
        "armfw: no built-in profile (*.json) in {}",
        dir.display()
    );
    entries.sort();
    let mut out = String::from(
        "/// (file stem, JSON text) of every committed profile.\npub(super) const PROFILES: &[(&str, &str)] = &[\n",
    );
    for (name, path) in &entries {
        println!("cargo:rerun-if-changed={}", path.display());
        out.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            path.display().to_string()
        ));
    }
    out.push_str("];\n");
    let dest =
        PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("builtin_profiles.rs");
    fs::write(dest, out).expect("OUT_DIR is writable");
}
