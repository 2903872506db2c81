//! Strict reading of JSON documents (scenarios, profiles): every error names the field by its
//! path (`steps[3].x[1]`), unknown keys are errors, and numbers follow one rule.
//!
//! Numbers: a JSON integer from 0 to 2^64−1 (no sign, fraction or exponent) or a string `0x`
//! followed by 1 to 16 hex digits in either case.

use serde_json::{Map, Value};

/// A reading error: the path of the field and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The path of the offending field, e.g. `steps[3].x[1]` (empty for the document).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for FieldError {}

pub(crate) fn err<T>(path: &str, message: impl Into<String>) -> Result<T, FieldError> {
    Err(FieldError {
        path: path.to_string(),
        message: message.into(),
    })
}

/// Parse a number under the shared rule.
pub(crate) fn number(path: &str, v: &Value) -> Result<u64, FieldError> {
    match v {
        Value::Number(n) => match n.as_u64() {
            Some(u) => Ok(u),
            None => err(
                path,
                format!("expected an integer from 0 to 2^64-1, found {n}"),
            ),
        },
        Value::String(s) => parse_hex(s).ok_or_else(|| FieldError {
            path: path.to_string(),
            message: format!("expected 0x followed by 1 to 16 hex digits, found {s:?}"),
        }),
        other => err(path, format!("expected a number, found {}", kind(other))),
    }
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

pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// An object being read: keys are taken one by one, and [`Obj::finish`] rejects the rest.
pub(crate) struct Obj<'a> {
    path: String,
    map: &'a Map<String, Value>,
    taken: Vec<&'static str>,
}

impl<'a> Obj<'a> {
    pub(crate) fn new(path: &str, v: &'a Value) -> Result<Obj<'a>, FieldError> {
        match v {
            Value::Object(map) => Ok(Obj {
                path: path.to_string(),
                map,
                taken: Vec::new(),
            }),
            other => err(path, format!("expected an object, found {}", kind(other))),
        }
    }

    pub(crate) fn path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    pub(crate) fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.taken.push(key);
        self.map.get(key)
    }

    pub(crate) fn required(&mut self, key: &'static str) -> Result<&'a Value, FieldError> {
        let path = self.path(key);
        self.get(key).map_or_else(|| err(&path, "missing"), Ok)
    }

    pub(crate) fn number(&mut self, key: &'static str) -> Result<Option<u64>, FieldError> {
        let path = self.path(key);
        self.get(key).map(|v| number(&path, v)).transpose()
    }

    pub(crate) fn bool(&mut self, key: &'static str) -> Result<Option<bool>, FieldError> {
        let path = self.path(key);
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => err(
                &path,
                format!("expected true or false, found {}", kind(other)),
            ),
        }
    }

    pub(crate) fn string(&mut self, key: &'static str) -> Result<Option<&'a str>, FieldError> {
        let path = self.path(key);
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => err(&path, format!("expected a string, found {}", kind(other))),
        }
    }

    pub(crate) fn array(&mut self, key: &'static str) -> Result<Option<&'a [Value]>, FieldError> {
        let path = self.path(key);
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(other) => err(&path, format!("expected an array, found {}", kind(other))),
        }
    }

    /// Reject every key that was not taken.
    pub(crate) fn finish(self) -> Result<(), FieldError> {
        let mut unknown: Vec<&String> = self
            .map
            .keys()
            .filter(|k| !self.taken.contains(&k.as_str()))
            .collect();
        unknown.sort();
        match unknown.first() {
            None => Ok(()),
            Some(k) => err(&join(&self.path, k), "unknown key"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn number_accepts_integers_and_hex_strings() {
        assert_eq!(number("n", &json!(0)), Ok(0));
        assert_eq!(number("n", &json!(u64::MAX)), Ok(u64::MAX));
        assert_eq!(number("n", &json!("0xFFFFffffFFFFffff")), Ok(u64::MAX));
        assert_eq!(number("n", &json!("0x0")), Ok(0));
    }

    #[test]
    fn number_rejects_signs_fractions_and_bad_hex() {
        for bad in [
            json!(-1),
            json!(1.5),
            json!(1e3),
            json!("0x"),
            json!("0x10000000000000000"),
            json!("12"),
            json!("0X1"),
            json!(" 0x1"),
            json!(true),
        ] {
            assert!(number("n", &bad).is_err(), "{bad} must be rejected");
        }
    }

    #[test]
    fn number_beyond_u64_is_rejected() {
        let v: Value = serde_json::from_str("18446744073709551616").unwrap();
        assert!(number("n", &v).is_err());
    }

    #[test]
    fn hex_output_has_no_leading_zeros() {
        assert_eq!(hex(0), "0x0");
        assert_eq!(hex(u64::MAX), "0xffffffffffffffff");
        assert_eq!(hex_le_bytes(&[0, 0, 0]), "0x0");
        assert_eq!(hex_le_bytes(&[0x01, 0x02, 0, 0]), "0x201");
        assert_eq!(hex_le_bytes(&[0xff; 16]), format!("0x{}", "f".repeat(32)));
        assert_eq!(hex_le_bytes(&[0x0a, 0, 0x0b]), "0xb000a");
    }

    #[test]
    fn finish_names_the_first_unknown_key() {
        let v = json!({"vcpu": 1, "vpcu": 2});
        let mut o = Obj::new("steps[0]", &v).unwrap();
        o.number("vcpu").unwrap();
        let e = o.finish().unwrap_err();
        assert_eq!(e.to_string(), "steps[0].vpcu: unknown key");
    }
}
