//! How armfw reports an error: always one line on stderr; with `--json`, also one JSON
//! document on stdout (format `armfw-error/1`, docs/schemas/armfw-error-1.schema.json), with
//! the same exit code.

use std::fmt;
use std::path::Path;

use armfw::FieldError;
use armfw::profile::ProfileError;
use armfw::scenario::ParseError;
use serde::Serialize;

use crate::output::StdoutError;

/// The format name and version of an error document.
pub const ERROR_FORMAT: &str = "armfw-error/1";

/// An error's context: the file it is about (found again by [`Report::of`] to fill `file`).
#[derive(Debug)]
pub struct InFile {
    file: String,
    what: Option<&'static str>,
}

impl InFile {
    /// About `path`, with no more words (the cause follows).
    pub fn new(path: impl AsRef<Path>) -> Self {
        InFile {
            file: path.as_ref().display().to_string(),
            what: None,
        }
    }

    /// About `path`: `what` went wrong (e.g. `cannot read`).
    pub fn with(path: impl AsRef<Path>, what: &'static str) -> Self {
        InFile {
            what: Some(what),
            ..Self::new(path)
        }
    }
}

impl fmt::Display for InFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.what {
            Some(w) => write!(f, "{}: {w}", self.file),
            None => f.write_str(&self.file),
        }
    }
}

impl std::error::Error for InFile {}

/// A profile error with a hint after it (`did you mean …?`).
#[derive(Debug)]
pub struct Hinted {
    /// The error.
    pub error: ProfileError,
    /// The hint; empty for none.
    pub hint: String,
}

impl fmt::Display for Hinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.hint.is_empty() {
            write!(f, "{}", self.error)
        } else {
            write!(f, "{}; {}", self.error, self.hint)
        }
    }
}

impl std::error::Error for Hinted {}

/// What kind of error: the `kind` key of an error document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A bad argument (clap).
    Usage,
    /// A file cannot be read (missing, unreadable, too big, not a regular file).
    Read,
    /// A file is not what it should be (not JSON, a field that fails validation, a bad
    /// checksum, a truncated file, a duplicate key).
    Invalid,
    /// No built-in profile has the name given.
    UnknownProfile,
    /// A file or standard output cannot be written.
    Write,
    /// Anything else (a value KVM refuses, a host that cannot run the command).
    Refused,
}

/// An error document.
#[derive(Debug, Serialize)]
pub struct Report {
    format: &'static str,
    kind: Kind,
    /// The file the error is about, if any.
    file: Option<String>,
    /// The field's path in that file (`registers[0].id`), if the error is about one.
    field: Option<String>,
    /// The one line printed on stderr (without `armfw: `).
    message: String,
    /// The exit code.
    exit: u8,
}

impl Report {
    /// The document for a failed command.
    pub fn of(e: &anyhow::Error, message: String, exit: u8) -> Report {
        let file = e.downcast_ref::<InFile>().map(|f| f.file.clone());
        let field_error: Option<&FieldError> = e
            .downcast_ref::<FieldError>()
            .or_else(|| match e.downcast_ref::<ProfileError>() {
                Some(ProfileError::Field(f)) => Some(f),
                _ => None,
            })
            .or_else(|| match e.downcast_ref::<armfw::snapshot::Error>() {
                Some(armfw::snapshot::Error::Field(f)) => Some(f),
                _ => None,
            })
            .or_else(|| match e.downcast_ref::<ParseError>() {
                Some(ParseError::Field(f)) => Some(f),
                _ => None,
            });
        let kind = if e.downcast_ref::<StdoutError>().is_some() || message.contains("cannot write")
        {
            Kind::Write
        } else if e.downcast_ref::<Hinted>().is_some()
            || matches!(
                e.downcast_ref::<ProfileError>(),
                Some(ProfileError::UnknownBuiltin(_))
            )
        {
            Kind::UnknownProfile
        } else if e.downcast_ref::<std::io::Error>().is_some()
            || e.downcast_ref::<crate::input::TooBig>().is_some()
        {
            Kind::Read
        } else if field_error.is_some()
            || e.downcast_ref::<ProfileError>().is_some()
            || e.downcast_ref::<armfw::snapshot::Error>().is_some()
            || e.downcast_ref::<ParseError>().is_some()
        {
            Kind::Invalid
        } else {
            Kind::Refused
        };
        Report {
            format: ERROR_FORMAT,
            kind,
            file,
            field: field_error
                .map(|f| f.path.clone())
                .filter(|p| !p.is_empty()),
            message,
            exit,
        }
    }

    /// The document for a bad argument.
    pub fn usage(message: String, exit: u8) -> Report {
        Report {
            format: ERROR_FORMAT,
            kind: Kind::Usage,
            file: None,
            field: None,
            message,
            exit,
        }
    }

    /// Print it on standard output (a failure to do so is not reported again: the line on
    /// stderr has said it).
    pub fn print(&self) {
        if let Ok(text) = serde_json::to_string_pretty(self) {
            let _ = crate::output::line(&text).and_then(|()| crate::output::flush());
        }
    }
}
