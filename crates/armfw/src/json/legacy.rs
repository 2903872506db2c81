//! The hand-written reader over [`serde_json::Value`] that the formats not yet moved to serde
//! types still use (profiles, snapshots). New formats use [`super::from_str`]; this module
//! goes when the last of them has moved.

use serde_json::{Map, Value};

use super::{FieldError, join, parse_hex};

pub(crate) fn err<T>(path: &str, message: impl Into<String>) -> Result<T, FieldError> {
    Err(FieldError::bad_value(path, message))
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
        Value::String(s) => parse_hex(s).ok_or_else(|| {
            FieldError::bad_value(
                path,
                format!("expected 0x followed by 1 to 16 hex digits, found {s:?}"),
            )
        }),
        other => err(path, format!("expected a number, found {}", kind(other))),
    }
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
        self.get(key).ok_or_else(|| FieldError::missing(path))
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
            Some(k) => Err(FieldError::unknown(join(&self.path, k))),
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
    fn finish_names_the_first_unknown_key() {
        let v = json!({"vcpu": 1, "vpcu": 2});
        let mut o = Obj::new("steps[0]", &v).unwrap();
        o.number("vcpu").unwrap();
        let e = o.finish().unwrap_err();
        assert_eq!(e.to_string(), "steps[0].vpcu: unknown key");
    }
}
