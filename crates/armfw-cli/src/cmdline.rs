//! What the `armfw` command and the unpublished `armfw-harness` share of their command lines:
//! a clap error as one line, text as one line, and the scenario files of a folder. The harness
//! compiles this same file (`#[path]`), so the two cannot drift.

use std::path::{Path, PathBuf};

/// Text on one line: every run of white space becomes one space.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A bad command line as one line, without clap's `error: ` prefix; with `tips`, clap's "did
/// you mean" kept after a `;`. The caller adds the program's name and "(see '… --help')".
pub fn clap_error_line(e: &clap::Error, tips: bool) -> String {
    use clap::error::ErrorKind;
    let text = e.render().to_string();
    let first = match e.kind() {
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand => {
            "no command given".to_string()
        }
        // clap's first paragraph (e.g. the missing arguments' names) as one line.
        _ => text
            .split("\n\n")
            .next()
            .map(one_line)
            .unwrap_or_else(|| "bad arguments".into()),
    };
    let first = first.strip_prefix("error: ").unwrap_or(&first).to_string();
    if !tips {
        return first;
    }
    // clap's "did you mean" (a similar command or option), kept on the same line.
    let tip = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("tip: "))
        .map(|t| format!("; {t}"))
        .unwrap_or_default();
    format!("{first}{tip}")
}

/// The `*.json` files directly in `dir`, in name order.
pub fn json_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    Ok(files)
}
