//! cache2k's `.trc.bin` traces: big-endian 32-bit signed integer keys back to back (bzip2 or gzip
//! compressed in cache2k-benchmark), one request each, in order; no time, size or client.
//!
//! Keys are signed, as cache2k's Java tooling reads them, so a key with bit 31 set prints negative.

use crate::{DeadLetter, Event, SourceError};

use super::stream::{hex, FixedRecords, Stream};
use super::Records;

/// Reads cache2k trace keys.
pub(crate) struct Cache2kTrc {
    records: FixedRecords<4>,
}

impl Cache2kTrc {
    /// Keys of the decompressed stream of the file `name`.
    pub(crate) fn new(name: &str, stream: Stream) -> Self {
        Cache2kTrc {
            records: FixedRecords::new(name, stream),
        }
    }
}

impl Records for Cache2kTrc {
    fn advance(&mut self) -> Result<bool, SourceError> {
        self.records.next_record()
    }

    fn decode(&mut self, index: u64) -> Result<Event, DeadLetter> {
        let Some(key) = self.records.complete() else {
            return Err(DeadLetter::new(
                self.records.origin(),
                self.records.truncated_reason(),
                hex(self.records.bytes()).as_bytes(),
            ));
        };
        Ok(Event {
            ts: index,
            key: i32::from_be_bytes(*key).to_string(),
            client: String::new(),
            region: String::new(),
            op: "get".to_string(),
            bytes: 1,
            attrs: Default::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use crate::traces::{TraceFile, TraceFormat};
    use crate::TsUnit;

    fn read(bytes: Vec<u8>) -> Vec<Result<crate::Event, crate::DeadLetter>> {
        TraceFile::from_reader(
            "t.trc.bin",
            Box::new(Cursor::new(bytes)),
            TraceFormat::Cache2kTrc,
            TsUnit::Seconds,
        )
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    fn keys(values: &[i32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_be_bytes()).collect()
    }

    #[test]
    fn decodes_big_endian_keys_with_synthetic_time() {
        let records = read(keys(&[7, 0x0800_0001, -2, 7]));
        let events: Vec<_> = records.into_iter().map(Result::unwrap).collect();
        let got: Vec<(u64, &str)> = events.iter().map(|e| (e.ts, e.key.as_str())).collect();
        assert_eq!(got, [(0, "7"), (1, "134217729"), (2, "-2"), (3, "7")]);
        assert!(events.iter().all(|e| e.bytes == 1 && e.op == "get"));
    }

    #[test]
    fn reads_bzip2_compressed_keys() {
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        bz.write_all(&keys(&[1, 2, 3])).unwrap();
        let records = read(bz.finish().unwrap());
        assert_eq!(records.len(), 3);
        assert_eq!(records[2].as_ref().unwrap().key, "3");
    }

    #[test]
    fn trailing_bytes_are_a_dead_letter() {
        let mut bytes = keys(&[1, 2]);
        bytes.extend_from_slice(&[0xab, 0xcd, 0xef]);
        let records = read(bytes);
        assert_eq!(records.len(), 3);
        let dead = records[2].as_ref().unwrap_err();
        assert_eq!(dead.origin, "file:t.trc.bin:3");
        assert!(
            dead.reason.starts_with("truncated record"),
            "{}",
            dead.reason
        );
        assert_eq!(dead.raw, "abcdef");
    }
}
