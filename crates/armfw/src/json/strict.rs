//! The two passes of [`super::from_str`]: text to a [`Value`] (duplicate keys refused, depth
//! bounded by serde_json), then the `Value` to a type through [`ValueDe`], a deserializer
//! with this module's own error type, so that serde's unknown, missing and duplicate fields
//! arrive as [`FieldErrorKind`]s rather than as text, and `serde_path_to_error` adds the path.

use std::cell::RefCell;
use std::fmt;

use serde::de::value::{BorrowedStrDeserializer, MapAccessDeserializer};
use serde::de::{
    self, Deserialize, DeserializeSeed, Deserializer, Expected, MapAccess, SeqAccess, Unexpected,
    Visitor,
};
use serde_json::{Map, Value};

use super::{FieldError, FieldErrorKind, Invalid, expected_words, join, unexpected_words};

pub(super) fn parse_value(text: &str) -> Result<Value, FieldError> {
    let duplicate = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let read = Node {
        at: &Chain::Root,
        duplicate: &duplicate,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    read.map_err(|e| {
        duplicate
            .take()
            .unwrap_or_else(|| FieldError::new(FieldErrorKind::Syntax, "", e.to_string()))
    })
}

pub(super) fn from_value_at<'de, T: Deserialize<'de>>(
    path: &str,
    value: &'de Value,
) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(ValueDe(value)).map_err(|e| {
        let mut at = path.to_string();
        for segment in e.path().iter() {
            at = match segment {
                serde_path_to_error::Segment::Seq { index } => join(&at, &format!("[{index}]")),
                serde_path_to_error::Segment::Map { key } => join(&at, key),
                serde_path_to_error::Segment::Enum { variant } => join(&at, variant),
                serde_path_to_error::Segment::Unknown => join(&at, "?"),
            };
        }
        let inner = e.into_inner();
        FieldError::new(inner.kind, join(&at, &inner.path), inner.message)
    })
}

/// Where a value sits, built only when an error needs it.
enum Chain<'a> {
    Root,
    Key(&'a Chain<'a>, &'a str),
    Index(&'a Chain<'a>, usize),
}

impl Chain<'_> {
    fn render(&self) -> String {
        match self {
            Chain::Root => String::new(),
            Chain::Key(parent, key) => join(&parent.render(), key),
            Chain::Index(parent, i) => join(&parent.render(), &format!("[{i}]")),
        }
    }
}

/// One JSON value of the text, read into a [`Value`]; a duplicate key is kept in `duplicate`
/// (serde_json's own error can only carry text).
struct Node<'a> {
    at: &'a Chain<'a>,
    duplicate: &'a RefCell<Option<FieldError>>,
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Node {
            at: &Chain::Index(self.at, out.len()),
            duplicate: self.duplicate,
        })? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let at = Chain::Key(self.at, &key);
            if out.contains_key(&key) {
                *self.duplicate.borrow_mut() = Some(FieldError::new(
                    FieldErrorKind::DuplicateKey,
                    at.render(),
                    "duplicate key",
                ));
                return Err(de::Error::custom("duplicate key"));
            }
            let v = map.next_value_seed(Node {
                at: &at,
                duplicate: self.duplicate,
            })?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// The error of [`ValueDe`]: a kind, a path relative to where `serde_path_to_error` puts it
/// (a missing field's name, an [`Invalid`]'s path) and a message.
#[derive(Debug)]
pub(super) struct Error {
    kind: FieldErrorKind,
    path: String,
    message: String,
}

impl Error {
    fn bad(message: String) -> Error {
        Error {
            kind: FieldErrorKind::BadValue,
            path: String::new(),
            message,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&join(&self.path, &self.message))
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        let text = msg.to_string();
        match Invalid::decode(&text) {
            Some(e) => Error {
                kind: e.kind,
                path: e.path,
                message: e.message,
            },
            None => Error::bad(text),
        }
    }

    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        Error::bad(format!(
            "expected {}, found {}",
            expected_words(exp),
            unexpected_words(&unexp)
        ))
    }

    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        Error::bad(format!("expected {exp}, found {unexp}"))
    }

    fn invalid_length(len: usize, exp: &dyn Expected) -> Self {
        Error::bad(format!("has {len} entries; expected {exp}"))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        Error::bad(format!("{variant:?} is not one of {expected:?}"))
    }

    fn unknown_field(_field: &str, _expected: &'static [&'static str]) -> Self {
        // serde_path_to_error's path already ends with the key.
        Error {
            kind: FieldErrorKind::UnknownField,
            path: String::new(),
            message: "unknown key".into(),
        }
    }

    fn missing_field(field: &'static str) -> Self {
        Error {
            kind: FieldErrorKind::MissingField,
            path: field.into(),
            message: "missing".into(),
        }
    }

    fn duplicate_field(field: &'static str) -> Self {
        Error {
            kind: FieldErrorKind::DuplicateKey,
            path: field.into(),
            message: "duplicate key".into(),
        }
    }
}

/// A parsed value as a strict deserializer: structs and maps from objects only, sequences
/// from arrays only, `null` never `None` (an absent key is), every sequence and map read to
/// its end.
#[derive(Clone, Copy)]
struct ValueDe<'a>(&'a Value);

fn unexpected(v: &Value) -> Unexpected<'_> {
    match v {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Unexpected::Unsigned(u),
            (None, Some(i)) => Unexpected::Signed(i),
            _ => Unexpected::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

impl<'de> Deserializer<'de> for ValueDe<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => visitor.visit_u64(u),
                (None, Some(i)) => visitor.visit_i64(i),
                _ => visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Array(a) => {
                let mut seq = Seq(a.iter());
                let v = visitor.visit_seq(&mut seq)?;
                match seq.0.len() {
                    0 => Ok(v),
                    _ => Err(de::Error::invalid_length(a.len(), &"fewer entries")),
                }
            }
            Value::Object(m) => {
                let mut map = Obj {
                    iter: m.iter(),
                    value: None,
                };
                let v = visitor.visit_map(&mut map)?;
                match map.iter.len() {
                    0 => Ok(v),
                    _ => Err(de::Error::custom("has more keys than expected")),
                }
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Array(_) => self.deserialize_any(visitor),
            other => Err(de::Error::invalid_type(unexpected(other), &visitor)),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Object(_) => self.deserialize_any(visitor),
            other => Err(de::Error::invalid_type(unexpected(other), &visitor)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::String(s) => visitor.visit_enum(BorrowedStrDeserializer::new(s)),
            Value::Object(m) if m.len() == 1 => {
                visitor.visit_enum(MapAccessDeserializer::new(Obj {
                    iter: m.iter(),
                    value: None,
                }))
            }
            other => Err(de::Error::invalid_type(unexpected(other), &visitor)),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct identifier
    }
}

struct Seq<'a>(std::slice::Iter<'a, Value>);

impl<'de> SeqAccess<'de> for Seq<'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0
            .next()
            .map(|v| seed.deserialize(ValueDe(v)))
            .transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Obj<'a> {
    iter: serde_json::map::Iter<'a>,
    value: Option<&'a Value>,
}

impl<'de> MapAccess<'de> for Obj<'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.iter.next() {
            None => Ok(None),
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(BorrowedStrDeserializer::new(k)).map(Some)
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        match self.value.take() {
            Some(v) => seed.deserialize(ValueDe(v)),
            None => Err(de::Error::custom("a value without its key")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}
