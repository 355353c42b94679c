//! The JSON wire format of an event: one JSON object per Kafka message or per line of a file.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::{DeadLetter, Event};

/// The fields of an event as they arrive, each kept as a loose JSON value so that a wrong type can be
/// reported by field name rather than as a generic type error. Unknown fields are ignored: producers may
/// add fields before consumers know them.
#[derive(Deserialize)]
#[serde(expecting = "a JSON object")]
struct WireEvent {
    ts: Option<Value>,
    key: Option<Value>,
    client: Option<Value>,
    region: Option<Value>,
    op: Option<Value>,
    bytes: Option<Value>,
    attrs: Option<Value>,
}

/// Decodes one event from a JSON object such as
/// `{"ts":1700000000000,"key":"k000123","client":"c00042","region":"eu-west","op":"read","bytes":4096}`.
///
/// `ts` (integer milliseconds) and `key` (string) are required; `client`, `region`, `op` (strings),
/// `bytes` (integer) and `attrs` (object) default to empty or zero when absent or `null`. Anything else
/// becomes a [`DeadLetter`] from `origin` whose reason names the problem.
pub fn decode_json(origin: &str, bytes: &[u8]) -> Result<Event, DeadLetter> {
    let reject = |reason: String| DeadLetter::new(origin, reason, bytes);
    let wire: WireEvent = serde_json::from_slice(bytes).map_err(|e| {
        reject(match e.classify() {
            serde_json::error::Category::Data => format!("invalid event: {e}"),
            _ => format!("invalid JSON: {e}"),
        })
    })?;
    let ts = match wire.ts {
        None => return Err(reject("missing field ts".into())),
        Some(v) => v.as_u64().ok_or_else(|| {
            reject(format!(
                "field ts must be a non-negative integer (milliseconds), got {}",
                describe(&v)
            ))
        })?,
    };
    let key = match wire.key {
        None => return Err(reject("missing field key".into())),
        Some(Value::String(s)) if !s.is_empty() => s,
        Some(Value::String(_)) => return Err(reject("field key is empty".into())),
        Some(v) => {
            return Err(reject(format!(
                "field key must be a string, got {}",
                describe(&v)
            )))
        }
    };
    Ok(Event {
        ts,
        key,
        client: optional_string("client", wire.client).map_err(&reject)?,
        region: optional_string("region", wire.region).map_err(&reject)?,
        op: optional_string("op", wire.op).map_err(&reject)?,
        bytes: match wire.bytes {
            None | Some(Value::Null) => 0,
            Some(v) => v.as_u64().ok_or_else(|| {
                reject(format!(
                    "field bytes must be a non-negative integer, got {}",
                    describe(&v)
                ))
            })?,
        },
        attrs: attributes(wire.attrs).map_err(&reject)?,
    })
}

/// Encodes an event as one JSON object (no trailing newline), the inverse of [`decode_json`].
pub fn encode_json(event: &Event) -> Vec<u8> {
    // Serializing cannot fail: every field is a string, an integer or a map with string keys.
    serde_json::to_vec(event).expect("an Event always serializes to JSON")
}

/// A string field that may be absent or `null` (then empty).
fn optional_string(name: &str, value: Option<Value>) -> Result<String, String> {
    match value {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s),
        Some(v) => Err(format!(
            "field {name} must be a string, got {}",
            describe(&v)
        )),
    }
}

/// The `attrs` object. Scalar values other than strings are kept as their JSON text because attributes
/// are free-form labels; nested arrays or objects are rejected since no consumer could interpret them.
fn attributes(value: Option<Value>) -> Result<BTreeMap<String, String>, String> {
    let map = match value {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(map)) => map,
        Some(v) => {
            return Err(format!(
                "field attrs must be an object, got {}",
                describe(&v)
            ))
        }
    };
    map.into_iter()
        .map(|(name, v)| match v {
            Value::String(s) => Ok((name, s)),
            Value::Number(_) | Value::Bool(_) => Ok((name, v.to_string())),
            Value::Null => Ok((name, String::new())),
            other => Err(format!(
                "attribute {name} must be a scalar, got {}",
                describe(&other)
            )),
        })
        .collect()
}

/// A short description of a JSON value for a reason text: its type and, for scalars, the value.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) if s.len() <= 40 => format!("string {s:?}"),
        Value::String(_) => "a long string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(raw: &str) -> String {
        decode_json("test", raw.as_bytes()).unwrap_err().reason
    }

    #[test]
    fn decodes_full_event() {
        let e = decode_json(
            "test",
            br#"{"ts":1700000000000,"key":"k1","client":"c1","region":"eu-west","op":"read",
                "bytes":4096,"attrs":{"home":"us-east","n":3},"extra":[1,2]}"#,
        )
        .unwrap();
        assert_eq!(e.ts, 1_700_000_000_000);
        assert_eq!(e.key, "k1");
        assert_eq!(e.client, "c1");
        assert_eq!(e.region, "eu-west");
        assert_eq!(e.op, "read");
        assert_eq!(e.bytes, 4096);
        assert_eq!(e.attrs["home"], "us-east");
        assert_eq!(e.attrs["n"], "3");
    }

    #[test]
    fn optional_fields_default() {
        let e = decode_json("test", br#"{"ts":5,"key":"a","client":null}"#).unwrap();
        assert_eq!(
            e,
            Event {
                ts: 5,
                key: "a".into(),
                client: String::new(),
                region: String::new(),
                op: String::new(),
                bytes: 0,
                attrs: BTreeMap::new(),
            }
        );
    }

    #[test]
    fn round_trips() {
        let mut e = decode_json("test", br#"{"ts":7,"key":"x","bytes":9}"#).unwrap();
        e.attrs.insert("home".into(), "ap-south".into());
        assert_eq!(decode_json("test", &encode_json(&e)).unwrap(), e);
    }

    #[test]
    fn reasons_name_the_problem() {
        assert!(reason("{not json").starts_with("invalid JSON: "));
        assert!(reason("").starts_with("invalid JSON: "));
        assert!(reason("[1,2]").starts_with("invalid event: "));
        assert!(reason("[1,2]").contains("a JSON object"));
        assert_eq!(reason(r#"{"ts":1}"#), "missing field key");
        assert_eq!(reason(r#"{"key":"a"}"#), "missing field ts");
        assert!(reason(r#"{"ts":-1,"key":"a"}"#).starts_with("field ts must be"));
        assert!(reason(r#"{"ts":1.5,"key":"a"}"#).starts_with("field ts must be"));
        assert!(reason(r#"{"ts":"1","key":"a"}"#).starts_with("field ts must be"));
        assert!(reason(r#"{"ts":1,"key":7}"#).starts_with("field key must be a string"));
        assert_eq!(reason(r#"{"ts":1,"key":""}"#), "field key is empty");
        assert!(reason(r#"{"ts":1,"key":"a","bytes":"x"}"#).starts_with("field bytes"));
        assert!(reason(r#"{"ts":1,"key":"a","op":3}"#).starts_with("field op"));
        assert!(reason(r#"{"ts":1,"key":"a","attrs":[]}"#).starts_with("field attrs"));
        assert!(reason(r#"{"ts":1,"key":"a","attrs":{"x":[]}}"#).starts_with("attribute x"));
        assert!(reason(r#"{"ts":1,"key":"a"} trailing"#).starts_with("invalid JSON: "));
    }

    #[test]
    fn dead_letter_keeps_origin_and_raw() {
        let d = decode_json("file:t.jsonl:3", b"\xff\xfe").unwrap_err();
        assert_eq!(d.origin, "file:t.jsonl:3");
        assert!(d.reason.starts_with("invalid JSON: "), "{}", d.reason);
        assert_eq!(d.raw, "\u{fffd}\u{fffd}");
    }
}
