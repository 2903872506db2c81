//! Everything armfw writes: standard output (every write checked, including the final flush;
//! a closed pipe ends the command quietly with [`EXIT_BROKEN_PIPE`]) and files (written to a
//! temporary file in the same folder, flushed, fsynced and renamed over the target, so a
//! failed or interrupted write leaves the old file as it was).

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The exit status when standard output is a pipe whose reader has gone (`armfw sim … | head`):
/// 141, what a shell reports for a command ended by SIGPIPE (128 + 13), so `set -o pipefail`
/// sees the output was cut short. Nothing is printed on stderr.
pub const EXIT_BROKEN_PIPE: u8 = 141;

/// A failed write to standard output (kept apart from other errors so that `main` can end a
/// closed pipe quietly).
#[derive(Debug)]
pub struct StdoutError(pub io::Error);

impl fmt::Display for StdoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot write standard output: {}", self.0)
    }
}

impl std::error::Error for StdoutError {}

impl StdoutError {
    /// The reader of the pipe has gone (EPIPE).
    pub fn is_broken_pipe(&self) -> bool {
        self.0.kind() == io::ErrorKind::BrokenPipe
    }
}

/// Write `bytes` to standard output.
pub fn write_bytes(bytes: &[u8]) -> Result<()> {
    io::stdout().lock().write_all(bytes).map_err(StdoutError)?;
    Ok(())
}

/// Write `text` and a newline to standard output.
pub fn line(text: &str) -> Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .map_err(StdoutError)?;
    Ok(())
}

/// Flush standard output (what is buffered reaches the file, pipe or disk, or the error is
/// reported).
pub fn flush() -> Result<()> {
    io::stdout().lock().flush().map_err(StdoutError)?;
    Ok(())
}

/// `text` for a terminal: control characters (escape sequences, carriage returns, newlines,
/// DEL, C1 controls) written as Rust escapes (`\u{1b}`), so a file's texts cannot drive the
/// terminal or forge lines.
pub fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.into()
}

/// A line on standard error; a failure to write it is ignored (there is nowhere left to say
/// so).
pub fn warn(text: &str) {
    let _ = writeln!(io::stderr().lock(), "armfw: {}", shown(text));
}

/// `println!` with the write checked: `outln!("{x}")?`.
macro_rules! outln {
    () => { $crate::output::line("") };
    ($($t:tt)*) => { $crate::output::line(&format!($($t)*)) };
}
pub(crate) use outln;

/// Refuse to write binary data to a terminal unless `force`.
pub fn refuse_binary_to_terminal(force: bool) -> Result<()> {
    if !force && io::stdout().is_terminal() {
        bail!(
            "standard output is a terminal: refusing to print the binary form (give -o FILE, redirect, or --force)"
        );
    }
    Ok(())
}

/// Write `bytes` to `path` atomically: a temporary file in the same folder, written, flushed
/// and fsynced, then renamed over `path` (and the folder fsynced). On any error the temporary
/// file is removed and an existing `path` is as it was. A symbolic link is followed (its
/// target is replaced). An existing target that is not a regular file (`/dev/stdout`, a
/// FIFO, a device) cannot be replaced: it is written in place, every write checked.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let shown = path.display();
    let old = match fs::metadata(path) {
        Ok(m) if !m.is_file() => {
            let written = OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|mut f| f.write_all(bytes).and_then(|()| f.flush()));
            return written.with_context(|| format!("{shown}: cannot write"));
        }
        Ok(m) => Some(m.permissions()),
        Err(_) => None,
    };
    let target = match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() && old.is_some() => {
            fs::canonicalize(path).with_context(|| format!("{shown}: cannot write"))?
        }
        _ => path.to_path_buf(),
    };
    let name = target
        .file_name()
        .with_context(|| format!("{shown}: cannot write: not a file name"))?;
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = dir.join(format!(
        ".{}.armfw-{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> io::Result<()> {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        if let Some(p) = old {
            f.set_permissions(p)?;
        }
        f.write_all(bytes)?;
        f.flush()?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, &target)?;
        // The rename itself reaches the disk with the folder; some file systems refuse to
        // fsync a folder, which loses nothing already written.
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        bail!("{shown}: cannot write: {e}");
    }
    Ok(())
}

/// Print `rows` as columns padded to their widest cell (the last column unpadded).
pub fn print_rows<R: AsRef<[String]>>(rows: &[R]) -> anyhow::Result<()> {
    let n = rows.iter().map(|r| r.as_ref().len()).max().unwrap_or(0);
    let mut widths = vec![0usize; n];
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r.as_ref()) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in rows {
        let r = r.as_ref();
        let mut line = String::new();
        for (i, (c, w)) in r.iter().zip(&widths).enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  "));
            }
        }
        outln!("{}", line.trim_end())?;
    }
    Ok(())
}
