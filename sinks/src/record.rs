//! The changelog record format shared by the JSON-lines and Kafka sinks.

use serde::Serialize;

use crate::{Change, SinkError};

/// The wire form of a change: fields in the documented order `table, key, version, diff, row`
/// (a derived struct keeps that order; a `serde_json::Map` would sort them).
#[derive(Serialize)]
struct Record<'a> {
    table: &'a str,
    key: &'a str,
    version: u64,
    diff: i64,
    row: &'a serde_json::Value,
}

/// Encodes `change` as one compact JSON object `{"table","key","version","diff","row"}` with
/// `version` overridden by the version being written (the epoch the sink was asked to write).
/// Deserializing the result as a [`Change`] gives the change back.
pub fn encode_record(version: u64, change: &Change) -> Result<Vec<u8>, SinkError> {
    Ok(serde_json::to_vec(&Record {
        table: &change.table,
        key: &change.key,
        version,
        diff: change.diff,
        row: &change.row,
    })?)
}

/// The changes of one version in a deterministic order: by table, key, diff (retractions before
/// insertions, so an update reads as "old row out, new row in"), then row text.
///
/// Sinks write in this order so that rewriting a version after a restart produces the same
/// sequence, which lets the Kafka sink resume a half-written version by position.
pub fn canonical_order(changes: &[Change]) -> Vec<&Change> {
    let mut sorted: Vec<(&Change, String)> =
        changes.iter().map(|c| (c, c.row.to_string())).collect();
    sorted.sort_by(|(a, ra), (b, rb)| {
        (&a.table, &a.key, a.diff, ra).cmp(&(&b.table, &b.key, b.diff, rb))
    });
    sorted.into_iter().map(|(c, _)| c).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(table: &str, key: &str, diff: i64, row: serde_json::Value) -> Change {
        Change::new(table, key, row, diff, 3)
    }

    #[test]
    fn record_has_documented_field_order_and_round_trips() {
        let c = change("assignments", "c1", 1, json!({"region": "us-east"}));
        let bytes = encode_record(3, &c).unwrap();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            r#"{"table":"assignments","key":"c1","version":3,"diff":1,"row":{"region":"us-east"}}"#
        );
        let back: Change = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn canonical_order_puts_retraction_before_insertion() {
        let changes = vec![
            change("b", "k", 1, json!(1)),
            change("a", "k2", 1, json!(2)),
            change("a", "k1", 1, json!({"new": true})),
            change("a", "k1", -1, json!({"old": true})),
        ];
        let keys: Vec<(&str, &str, i64)> = canonical_order(&changes)
            .iter()
            .map(|c| (c.table.as_str(), c.key.as_str(), c.diff))
            .collect();
        assert_eq!(
            keys,
            [
                ("a", "k1", -1),
                ("a", "k1", 1),
                ("a", "k2", 1),
                ("b", "k", 1)
            ]
        );
    }
}
