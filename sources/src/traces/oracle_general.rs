//! libCacheSim's oracleGeneral binary trace: 24-byte little-endian records
//! `{u32 time; u64 obj_id; u32 obj_size; i64 next_access_vtime}`, time in seconds.
//!
//! `next_access_vtime` (the position of the object's next request, precomputed for offline policies)
//! is not carried into the event: it is derived from the order the events already have.

use crate::{DeadLetter, Event, SourceError};

use super::stream::{hex, FixedRecords, Stream};
use super::Records;

/// Size of one record.
const RECORD: usize = 24;

/// Reads oracleGeneral records.
pub(crate) struct OracleGeneral {
    records: FixedRecords<RECORD>,
}

impl OracleGeneral {
    /// Records of the decompressed stream of the file `name`.
    pub(crate) fn new(name: &str, stream: Stream) -> Self {
        OracleGeneral {
            records: FixedRecords::new(name, stream),
        }
    }
}

impl Records for OracleGeneral {
    fn advance(&mut self) -> Result<bool, SourceError> {
        self.records.next_record()
    }

    fn decode(&mut self, _index: u64) -> Result<Event, DeadLetter> {
        let Some(record) = self.records.complete() else {
            return Err(DeadLetter::new(
                self.records.origin(),
                self.records.truncated_reason(),
                hex(self.records.bytes()).as_bytes(),
            ));
        };
        let time = u32::from_le_bytes(field(record, 0));
        let obj_id = u64::from_le_bytes(field(record, 4));
        let obj_size = u32::from_le_bytes(field(record, 12));
        Ok(Event {
            ts: u64::from(time) * 1000,
            key: obj_id.to_string(),
            client: String::new(),
            region: String::new(),
            op: "get".to_string(),
            bytes: u64::from(obj_size),
            attrs: Default::default(),
        })
    }
}

/// The `N` bytes of `record` from offset `at`; callers pass offsets that fit the 24-byte layout.
fn field<const N: usize>(record: &[u8; RECORD], at: usize) -> [u8; N] {
    std::array::from_fn(|k| record[at + k])
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use crate::traces::{TraceFile, TraceFormat};
    use crate::TsUnit;

    fn record(time: u32, id: u64, size: u32, next: i64) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&time.to_le_bytes());
        bytes.extend_from_slice(&id.to_le_bytes());
        bytes.extend_from_slice(&size.to_le_bytes());
        bytes.extend_from_slice(&next.to_le_bytes());
        bytes
    }

    fn read(bytes: Vec<u8>) -> Vec<Result<crate::Event, crate::DeadLetter>> {
        TraceFile::from_reader(
            "cp.oracleGeneral.bin",
            Box::new(Cursor::new(bytes)),
            TraceFormat::OracleGeneral,
            TsUnit::Seconds,
        )
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    #[test]
    fn decodes_little_endian_records() {
        let mut bytes = record(5_633_898, 42_932_745, 512, -1);
        bytes.extend(record(5_633_899, u64::MAX, 4096, 7));
        let records = read(bytes);
        assert_eq!(records.len(), 2);
        let first = records[0].as_ref().unwrap();
        assert_eq!(
            (first.ts, first.key.as_str(), first.bytes, first.op.as_str()),
            (5_633_898_000, "42932745", 512, "get")
        );
        assert_eq!(records[1].as_ref().unwrap().key, u64::MAX.to_string());
    }

    #[test]
    fn a_truncated_record_is_a_dead_letter() {
        let mut bytes = record(1, 2, 3, 4);
        bytes.extend(&record(5, 6, 7, 8)[..10]);
        let records = read(bytes);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].as_ref().unwrap().key, "2");
        let dead = records[1].as_ref().unwrap_err();
        assert_eq!(dead.origin, "file:cp.oracleGeneral.bin:2");
        assert!(
            dead.reason.contains("10 bytes into a 24-byte record"),
            "{}",
            dead.reason
        );
        assert_eq!(dead.raw, "05000000060000000000");
    }

    #[test]
    fn empty_input_has_no_records() {
        assert!(read(Vec::new()).is_empty());
    }
}
