use super::*;
use serde_json::json;

#[derive(Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    name: String,
    flag: Option<bool>,
    x: Option<Vec<Number>>,
    inner: Option<Inner>,
    free: Option<Value>,
}

#[derive(Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawInner")]
struct Inner {
    n: u64,
    list: Vec<u64>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInner {
    n: Number,
    list: Vec<Number>,
}

impl TryFrom<RawInner> for Inner {
    type Error = Invalid;

    fn try_from(raw: RawInner) -> Result<Inner, Invalid> {
        let list: Vec<u64> = raw.list.iter().map(|n| n.0).collect();
        if let Some(i) = list.iter().position(|&v| v >= raw.n.0) {
            return Err(FieldError::bad_value(format!("list[{i}]"), "not below n").into());
        }
        Ok(Inner { n: raw.n.0, list })
    }
}

fn read(text: &str) -> Result<Doc, FieldError> {
    from_str(text)
}

fn error(text: &str) -> (FieldErrorKind, String) {
    let e = read(text).unwrap_err();
    (e.kind, e.to_string())
}

#[test]
fn from_str_reads_a_document() {
    let d = read(r#"{"name": "a", "x": [1, "0x2"], "inner": {"n": 3, "list": [0, 2]}}"#).unwrap();
    assert_eq!(d.x, Some(vec![Number(1), Number(2)]));
    assert_eq!(
        d.inner,
        Some(Inner {
            n: 3,
            list: vec![0, 2]
        })
    );
    assert_eq!(d.flag, None);
}

#[test]
fn from_str_names_each_kind_of_error_with_its_path() {
    use FieldErrorKind::*;
    assert_eq!(
        error(r#"{"name": "a", "nmae": 1}"#),
        (UnknownField, "nmae: unknown key".into())
    );
    assert_eq!(error(r#"{}"#), (MissingField, "name: missing".into()));
    assert_eq!(
        error(r#"{"name": "a", "inner": {"list": []}}"#),
        (MissingField, "inner.n: missing".into())
    );
    assert_eq!(
        error(r#"{"name": "a", "x": [1, 2, -3]}"#),
        (
            BadValue,
            "x[2]: expected an integer from 0 to 2^64-1, found -3".into()
        )
    );
    assert_eq!(
        error(r#"{"name": "a", "inner": {"n": 3, "list": [0, 3]}}"#),
        (BadValue, "inner.list[1]: not below n".into())
    );
    assert_eq!(
        error(r#"{"name": "a", "free": {"k": [{"z": 1, "z": 2}]}}"#),
        (DuplicateKey, "free.k[0].z: duplicate key".into())
    );
    assert_eq!(
        error(r#"{"name": "a", "name": "b"}"#),
        (DuplicateKey, "name: duplicate key".into())
    );
    assert_eq!(error(r#"{"name": "a""#).0, Syntax);
    assert_eq!(error(r#"{"name": "a"} x"#).0, Syntax);
}

#[test]
fn from_str_names_types_as_json_does() {
    assert_eq!(
        error(r#"{"name": 1}"#).1,
        "name: expected a string, found a number"
    );
    assert_eq!(
        error(r#"{"name": "a", "flag": "yes"}"#).1,
        "flag: expected true or false, found a string"
    );
    assert_eq!(
        error(r#"{"name": "a", "x": {}}"#).1,
        "x: expected an array, found an object"
    );
    assert_eq!(
        error(r#"{"name": "a", "inner": []}"#).1,
        "inner: expected an object, found an array"
    );
    assert_eq!(error("[\"a\"]").1, "expected an object, found an array");
    assert_eq!(
        error(r#"{"name": "a", "x": [true]}"#).1,
        "x[0]: expected a number, found a boolean"
    );
}

#[test]
fn null_is_not_an_absent_key() {
    assert_eq!(
        error(r#"{"name": "a", "flag": null}"#).1,
        "flag: expected true or false, found null"
    );
    let d = read(r#"{"name": "a", "free": null}"#).unwrap();
    assert_eq!(d.free, Some(Value::Null));
}

#[test]
fn nesting_is_bounded_by_the_recursion_limit() {
    let deep = |n: usize| {
        format!(
            r#"{{"name": "a", "free": {}{}}}"#,
            "[".repeat(n),
            "]".repeat(n)
        )
    };
    assert!(read(&deep(120)).is_ok());
    let e = read(&deep(200)).unwrap_err();
    assert_eq!(e.kind, FieldErrorKind::Syntax);
    assert!(e.message.contains("recursion limit"), "{e}");
}

#[test]
fn number_accepts_integers_and_hex_strings() {
    let n = |v: Value| from_value::<Number>(&v).map(|n| n.0);
    assert_eq!(n(json!(0)), Ok(0));
    assert_eq!(n(json!(u64::MAX)), Ok(u64::MAX));
    assert_eq!(n(json!("0xFFFFffffFFFFffff")), Ok(u64::MAX));
    assert_eq!(n(json!("0x0")), Ok(0));
}

#[test]
fn number_rejects_signs_fractions_and_bad_hex() {
    for (bad, message) in [
        ("-1", "expected an integer from 0 to 2^64-1, found -1"),
        ("1.5", "expected an integer from 0 to 2^64-1, found 1.5"),
        ("1e3", "expected an integer from 0 to 2^64-1, found 1000.0"),
        (
            "18446744073709551616",
            "expected an integer from 0 to 2^64-1, found 1.8446744073709552e+19",
        ),
        (
            r#""0x""#,
            r#"expected 0x followed by 1 to 16 hex digits, found "0x""#,
        ),
        (
            r#""0x10000000000000000""#,
            r#"expected 0x followed by 1 to 16 hex digits, found "0x10000000000000000""#,
        ),
        (
            r#""12""#,
            r#"expected 0x followed by 1 to 16 hex digits, found "12""#,
        ),
        (
            r#""0X1""#,
            r#"expected 0x followed by 1 to 16 hex digits, found "0X1""#,
        ),
        (
            r#"" 0x1""#,
            r#"expected 0x followed by 1 to 16 hex digits, found " 0x1""#,
        ),
        ("true", "expected a number, found a boolean"),
        ("null", "expected a number, found null"),
    ] {
        let e = from_str::<Number>(bad).unwrap_err();
        assert_eq!(e.message, message, "{bad}");
        assert_eq!(e.kind, FieldErrorKind::BadValue, "{bad}");
    }
}

#[test]
fn number_is_written_as_hex() {
    assert_eq!(
        serde_json::to_string(&[Number(0), Number(u64::MAX)]).unwrap(),
        r#"["0x0","0xffffffffffffffff"]"#
    );
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
fn join_puts_indices_without_a_dot() {
    assert_eq!(join("", "a"), "a");
    assert_eq!(join("a", "b"), "a.b");
    assert_eq!(join("a", "[1]"), "a[1]");
    assert_eq!(join("a", ""), "a");
}
