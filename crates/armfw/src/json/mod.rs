//! Strict reading and one number rule for every JSON file format (scenarios, result
//! documents, profiles, snapshots).
//!
//! A file format is a serde type: `#[derive(Deserialize)]` with
//! `#[serde(deny_unknown_fields)]`, invariants through `#[serde(try_from = "Raw…")]` whose
//! error is [`Invalid`], read with [`from_str`]; written through `Serialize`.
//!
//! What [`from_str`] guarantees:
//! - Every error is a [`FieldError`]: the field's path (`steps[3].x[1]`, empty for the
//!   document), a [`FieldErrorKind`] and a message for people.
//! - Duplicate object keys are errors (`FieldErrorKind::DuplicateKey`), at every depth, also
//!   inside free-form [`serde_json::Value`] fields.
//! - `null` is never a value: an `Option` field is `None` when its key is absent, and `null`
//!   is refused like any other value of the wrong type.
//! - A struct is read from a JSON object only (serde alone also takes an array).
//! - Nesting is bounded by serde_json's recursion limit (128 arrays or objects deep); deeper
//!   text is not JSON (`FieldErrorKind::Syntax`). Reading never panics.
//!
//! Keep a format's types plain structs (with `Option` fields for optional keys) and its own
//! leaf types: serde reads `#[serde(flatten)]`, `untagged` and internally tagged (`tag = …`)
//! enums through a buffer of its own, so errors inside them lose their path, and
//! `deny_unknown_fields` does not combine with `flatten`. A format with a kind key (`op`) reads
//! one flat struct of every key and checks which keys the kind takes in its `try_from`, as
//! `scenario`'s steps do. A field written as `null` (an absent value in a report) is an
//! `Option` serialised without `skip_serializing_if`; it cannot be read back by [`from_str`].
//!
//! Numbers ([`Number`]): a JSON integer from 0 to 2^64−1 (no sign, fraction or exponent) or a
//! string `0x` followed by 1 to 16 hex digits in either case ([`parse_hex`]). A field's own
//! range (below 2^32, 1 to 64, …) is checked by its type. Written back, a number is the string
//! [`hex`] gives: `0x`, lower-case, no leading zeros.

mod strict;

use std::fmt;

use serde::de::{self, Deserialize, DeserializeOwned, Deserializer, Unexpected, Visitor};
use serde::{Serialize, Serializer};
use serde_json::Value;

/// What kind of error a [`FieldError`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FieldErrorKind {
    /// The text is not JSON (or nests deeper than the limit); the path is empty.
    Syntax,
    /// A key the format does not have.
    UnknownField,
    /// A required key is absent.
    MissingField,
    /// A value of the wrong type, out of range, or breaking an invariant.
    BadValue,
    /// A key given twice in one object.
    DuplicateKey,
}

impl FieldErrorKind {
    const ALL: [FieldErrorKind; 5] = [
        FieldErrorKind::Syntax,
        FieldErrorKind::UnknownField,
        FieldErrorKind::MissingField,
        FieldErrorKind::BadValue,
        FieldErrorKind::DuplicateKey,
    ];

    fn code(self) -> char {
        match self {
            FieldErrorKind::Syntax => 's',
            FieldErrorKind::UnknownField => 'u',
            FieldErrorKind::MissingField => 'm',
            FieldErrorKind::BadValue => 'b',
            FieldErrorKind::DuplicateKey => 'd',
        }
    }

    fn from_code(c: char) -> Option<FieldErrorKind> {
        Self::ALL.into_iter().find(|k| k.code() == c)
    }
}

/// A reading error: the path of the field, what kind of error it is and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FieldError {
    /// The path of the offending field, e.g. `steps[3].x[1]` (empty for the document).
    pub path: String,
    /// What kind of error it is.
    pub kind: FieldErrorKind,
    /// What is wrong, for people (`unknown key`, `missing`, `expected a string, found null`).
    pub message: String,
}

impl FieldError {
    /// An error of `kind` at `path`.
    pub fn new(kind: FieldErrorKind, path: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            path: path.into(),
            kind,
            message: message.into(),
        }
    }

    /// A bad value at `path`.
    pub fn bad_value(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::BadValue, path, message)
    }

    /// The required key at `path` is absent (message `missing`).
    pub fn missing(path: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::MissingField, path, "missing")
    }

    /// The key at `path` is not part of the format (message `unknown key`).
    pub fn unknown(path: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::UnknownField, path, "unknown key")
    }

    /// The same error with `prefix` in front of its path (`vm` + `vcpus` is `vm.vcpus`).
    pub fn under(mut self, prefix: &str) -> Self {
        self.path = join(prefix, &self.path);
        self
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for FieldError {}

/// The error of a `#[serde(try_from = "Raw…")]` conversion: a [`FieldError`] whose path is
/// relative to the value being converted (`power_off[1]` inside `vm`), so that [`from_str`]
/// reports the whole path (`vm.power_off[1]`).
///
/// serde passes a conversion's error on as text only, so `Display` writes an encoding that
/// the readers of this module decode; show errors to people as [`FieldError`]s, never through
/// this type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid(pub FieldError);

impl From<FieldError> for Invalid {
    fn from(e: FieldError) -> Self {
        Invalid(e)
    }
}

/// Starts an encoded [`Invalid`]: the kind's code, the relative path, `MARK`, the message.
const MARK: char = '\u{1f}';

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.0;
        write!(f, "{MARK}{}{}{MARK}{}", e.kind.code(), e.path, e.message)
    }
}

impl Invalid {
    /// Decode the text `Display` wrote.
    fn decode(text: &str) -> Option<FieldError> {
        let rest = text.strip_prefix(MARK)?;
        let mut chars = rest.chars();
        let kind = FieldErrorKind::from_code(chars.next()?)?;
        let (path, message) = chars.as_str().split_once(MARK)?;
        Some(FieldError::new(kind, path, message))
    }
}

/// Read `text` as a `T` under the rules of this module (see the module doc).
///
/// # Example
///
/// ```
/// use armfw::json::{FieldErrorKind, Number, from_str};
///
/// #[derive(Debug, serde::Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct Step {
///     x: Vec<Number>,
/// }
///
/// let s: Step = from_str(r#"{"x": [1, "0xFF"]}"#).unwrap();
/// assert_eq!(s.x, [Number(1), Number(0xff)]);
/// let e = from_str::<Step>(r#"{"x": [1, -2]}"#).unwrap_err();
/// assert_eq!(e.to_string(), "x[1]: expected an integer from 0 to 2^64-1, found -2");
/// let e = from_str::<Step>(r#"{"x": [], "x": []}"#).unwrap_err();
/// assert_eq!((e.kind, e.path.as_str()), (FieldErrorKind::DuplicateKey, "x"));
/// ```
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, FieldError> {
    from_value(&parse_value(text)?)
}

/// Parse `text` as JSON, refusing duplicate keys (with their path) and text nested deeper
/// than serde_json's recursion limit. For formats read in two stages (a version key first).
pub fn parse_value(text: &str) -> Result<Value, FieldError> {
    strict::parse_value(text)
}

/// Read a parsed `value` as a `T` (see [`from_str`]); paths start at `value`.
pub fn from_value<'de, T: Deserialize<'de>>(value: &'de Value) -> Result<T, FieldError> {
    from_value_at("", value)
}

/// Read `value`, which sits at `path` in its document, as a `T`: error paths start with
/// `path` (`steps[3]` gives `steps[3].x[1]`).
pub fn from_value_at<'de, T: Deserialize<'de>>(
    path: &str,
    value: &'de Value,
) -> Result<T, FieldError> {
    strict::from_value_at(path, value)
}

/// A number under the shared rule (see the module doc). Serialised as its [`hex`] string in
/// human-readable formats (JSON), as a `u64` in binary ones (the snapshot's canonical body).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Number(pub u64);

impl From<u64> for Number {
    fn from(v: u64) -> Self {
        Number(v)
    }
}

impl From<Number> for u64 {
    fn from(n: Number) -> Self {
        n.0
    }
}

impl Serialize for Number {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex(self.0))
        } else {
            s.serialize_u64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            d.deserialize_any(NumberVisitor)
        } else {
            d.deserialize_u64(NumberVisitor)
        }
    }
}

struct NumberVisitor;

impl<'de> Visitor<'de> for NumberVisitor {
    type Value = Number;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Number, E> {
        Ok(Number(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Number, E> {
        u64::try_from(v).map(Number).map_err(|_| not_an_integer(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Number, E> {
        // The text serde_json shows for the number (`1.5`, `1000.0`, `1.8446744073709552e+19`).
        let shown =
            serde_json::Number::from_f64(v).map_or_else(|| v.to_string(), |n| n.to_string());
        Err(not_an_integer(shown))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Number, E> {
        parse_hex(s).map(Number).ok_or_else(|| {
            E::custom(format!(
                "expected 0x followed by 1 to 16 hex digits, found {s:?}"
            ))
        })
    }
}

fn not_an_integer<E: de::Error>(shown: impl fmt::Display) -> E {
    E::custom(format!(
        "expected an integer from 0 to 2^64-1, found {shown}"
    ))
}

/// `0x` followed by 1 to 16 hex digits (either case).
pub fn parse_hex(s: &str) -> Option<u64> {
    let digits = s.strip_prefix("0x")?;
    if digits.is_empty() || digits.len() > 16 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// The output form of a number: lower-case hex, no leading zeros (`"0x0"`).
pub fn hex(v: u64) -> String {
    format!("{v:#x}")
}

/// The output form of a little-endian buffer of any size read as one unsigned number.
pub fn hex_le_bytes(bytes: &[u8]) -> String {
    let mut s = String::from("0x");
    let mut started = false;
    for b in bytes.iter().rev() {
        if started {
            s.push_str(&format!("{b:02x}"));
        } else if *b != 0 {
            s.push_str(&format!("{b:x}"));
            started = true;
        }
    }
    if !started {
        s.push('0');
    }
    s
}

/// A number of any width: a little-endian buffer read as one unsigned number. In JSON a
/// JSON integer from 0 to 2^64−1 or `0x` and one or more hex digits (no upper bound: the
/// reader of a field says how wide it may be, with [`Wide::fit`]); written as [`hex_le_bytes`]
/// writes it. For register values of every size (128-bit V registers, 2048-bit Z registers,
/// the 512-bit SVE_VLS). Binary formats carry the bytes as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Wide {
    /// The bytes, least significant first, as many as the digits need (at least one).
    pub bytes: Vec<u8>,
    /// How many hex digits the input had (0 for a JSON integer or a value built in code).
    pub digits: usize,
}

impl Wide {
    /// A value from its little-endian bytes.
    pub fn from_le(bytes: &[u8]) -> Wide {
        Wide {
            bytes: bytes.to_vec(),
            digits: 0,
        }
    }

    /// The value as a buffer of exactly `size` bytes, if it fits and its input had at most
    /// `max(16, 2·size)` hex digits (the scenario format's rule: up to 64 bits as for every
    /// number, wider buffers up to their own width).
    pub fn fit(&self, size: usize) -> Option<Vec<u8>> {
        if self.digits > 16.max(2 * size) {
            return None;
        }
        let used = self
            .bytes
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |i| i + 1);
        if used > size {
            return None;
        }
        let mut buf = vec![0u8; size];
        buf[..used].copy_from_slice(&self.bytes[..used]);
        Some(buf)
    }

    /// The low 64 bits.
    pub fn low_u64(&self) -> u64 {
        le_u64(&self.bytes)
    }
}

impl From<u64> for Wide {
    fn from(v: u64) -> Wide {
        Wide::from_le(&v.to_le_bytes())
    }
}

impl Serialize for Wide {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex_le_bytes(&self.bytes))
        } else {
            s.serialize_bytes(&self.bytes)
        }
    }
}

impl<'de> Deserialize<'de> for Wide {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Wide;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Wide, E> {
                Ok(Wide::from(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Wide, E> {
                NumberVisitor.visit_i64(v).map(|n| Wide::from(n.0))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Wide, E> {
                NumberVisitor.visit_f64(v).map(|n| Wide::from(n.0))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Wide, E> {
                parse_wide(s).ok_or_else(|| {
                    E::custom(format!("expected 0x followed by hex digits, found {s:?}"))
                })
            }
            fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<Wide, E> {
                Ok(Wide::from_le(b))
            }
        }
        if d.is_human_readable() {
            d.deserialize_any(V)
        } else {
            d.deserialize_bytes(V)
        }
    }
}

/// The low 64 bits of a little-endian buffer of any length (a shorter one zero-extended).
pub fn le_u64(bytes: &[u8]) -> u64 {
    let mut le = [0u8; 8];
    let n = bytes.len().min(8);
    le[..n].copy_from_slice(&bytes[..n]);
    u64::from_le_bytes(le)
}

/// `0x` followed by one or more hex digits (either case), as a [`Wide`].
pub fn parse_wide(s: &str) -> Option<Wide> {
    let digits = s.strip_prefix("0x")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut bytes: Vec<u8> = digits
        .as_bytes()
        .rchunks(2)
        .map(|pair| {
            pair.iter().fold(0u8, |acc, &c| {
                // Checked above: every byte is a hex digit, so the digit is below 16.
                let d = char::from(c)
                    .to_digit(16)
                    .and_then(|d| u8::try_from(d).ok());
                acc << 4 | d.unwrap_or(0)
            })
        })
        .collect();
    if bytes.is_empty() {
        bytes.push(0);
    }
    Some(Wide {
        bytes,
        digits: digits.len(),
    })
}

pub(crate) fn err<T>(path: &str, message: impl Into<String>) -> Result<T, FieldError> {
    Err(FieldError::bad_value(path, message))
}

pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `path` and `key` as one path: `a` + `b` is `a.b`, `a` + `[1]` is `a[1]`.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else if key.is_empty() {
        path.to_string()
    } else if key.starts_with('[') {
        format!("{path}{key}")
    } else {
        format!("{path}.{key}")
    }
}

/// How a JSON value of an unexpected type is named in messages (`a number`, `null`).
fn unexpected_words(u: &Unexpected<'_>) -> String {
    match u {
        Unexpected::Bool(_) => "a boolean".into(),
        Unexpected::Unsigned(_) | Unexpected::Signed(_) | Unexpected::Float(_) => "a number".into(),
        Unexpected::Char(_) | Unexpected::Str(_) => "a string".into(),
        Unexpected::Unit | Unexpected::Option => "null".into(),
        Unexpected::Seq => "an array".into(),
        Unexpected::Map => "an object".into(),
        other => other.to_string(),
    }
}

/// How serde's "expected" texts read in messages (`true or false`, `an array`).
fn expected_words(exp: &dyn de::Expected) -> String {
    let s = exp.to_string();
    match s.as_str() {
        "a boolean" => "true or false".into(),
        "a sequence" => "an array".into(),
        "a map" => "an object".into(),
        _ if s.starts_with("struct ") => "an object".into(),
        _ => s,
    }
}

#[cfg(test)]
mod tests;
