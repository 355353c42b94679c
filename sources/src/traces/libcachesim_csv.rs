//! libCacheSim's CSV block trace (`version,time,op,size,lbn`), as in its `cloudPhysicsIO.csv` sample.
//!
//! `time` is in seconds, `op` is the SCSI command's opcode in hex (`28` READ(10), `2a` WRITE(10), and
//! the 6-, 12- and 16-byte variants), `size` is the request's length in bytes and `lbn` the logical
//! block number, which becomes the key. Columns are found by header name.

use crate::csv_line::CsvFields;
use crate::{DeadLetter, Event, SourceError, TsUnit};

use super::stream::Lines;
use super::{check_width, optional, parse_u64, size_or_one, text_field, Header, Records};

/// The header of the libCacheSim CSV sample, shown when a file has none.
const EXPECTED_HEADER: &str = "version,time,op,size,lbn";

/// Reads libCacheSim CSV records.
pub(crate) struct LibCacheSimCsv {
    lines: Lines,
    header: Header,
    time: usize,
    lbn: usize,
    op: Option<usize>,
    size: Option<usize>,
    fields: CsvFields,
}

impl LibCacheSimCsv {
    /// Reads the header; it must name `time` and `lbn` (`op` and `size` are optional).
    pub(crate) fn new(mut lines: Lines) -> Result<Self, SourceError> {
        let header = Header::read(&mut lines, EXPECTED_HEADER)?;
        Ok(LibCacheSimCsv {
            time: header.require(&lines, "time")?,
            lbn: header.require(&lines, "lbn")?,
            op: header.find("op"),
            size: header.find("size"),
            header,
            lines,
            fields: CsvFields::default(),
        })
    }

    fn event(&mut self) -> Result<Event, String> {
        self.fields
            .split(self.lines.line())
            .map_err(str::to_string)?;
        let fields = &self.fields;
        check_width(fields, &self.header)?;
        let ts = TsUnit::Seconds.parse_ms(text_field(fields, self.time, "time")?)?;
        let lbn = parse_u64(text_field(fields, self.lbn, "lbn")?, "lbn")?;
        let op = match optional(fields, self.op.map(|i| (i, "op")))? {
            None => "read",
            Some(code) => scsi_op(code).ok_or_else(|| {
                let shown: String = code.chars().take(20).collect();
                format!("unknown SCSI opcode {shown:?}: expected a READ or WRITE opcode in hex")
            })?,
        };
        let bytes = size_or_one(fields, self.size.map(|i| (i, "size")))?;
        Ok(Event {
            ts,
            key: lbn.to_string(),
            client: String::new(),
            region: String::new(),
            op: op.to_string(),
            bytes,
            attrs: Default::default(),
        })
    }
}

/// `read` or `write` for a SCSI READ or WRITE opcode written in hex (`28`, `0x2A`), or for the words
/// themselves.
fn scsi_op(code: &str) -> Option<&'static str> {
    let code = code.trim();
    let hex = code
        .strip_prefix("0x")
        .or_else(|| code.strip_prefix("0X"))
        .unwrap_or(code);
    match u8::from_str_radix(hex, 16) {
        // READ(6), READ(10), READ(12), READ(16).
        Ok(0x08 | 0x28 | 0xa8 | 0x88) => Some("read"),
        // WRITE(6), WRITE(10), WRITE(12), WRITE(16).
        Ok(0x0a | 0x2a | 0xaa | 0x8a) => Some("write"),
        _ if code.eq_ignore_ascii_case("read") => Some("read"),
        _ if code.eq_ignore_ascii_case("write") => Some("write"),
        _ => None,
    }
}

impl Records for LibCacheSimCsv {
    fn advance(&mut self) -> Result<bool, SourceError> {
        self.lines.next_non_blank()
    }

    fn decode(&mut self, _index: u64) -> Result<Event, DeadLetter> {
        self.event()
            .map_err(|reason| DeadLetter::new(self.lines.origin(), reason, self.lines.line()))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use crate::traces::{TraceFile, TraceFormat};
    use crate::TsUnit;

    fn read(text: &str) -> Vec<Result<crate::Event, crate::DeadLetter>> {
        TraceFile::from_reader(
            "io.csv",
            Box::new(Cursor::new(text.as_bytes().to_vec())),
            TraceFormat::LibCacheSimCsv,
            TsUnit::Seconds,
        )
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    #[test]
    fn reads_records_and_maps_opcodes() {
        let records = read(
            "version,time,op,size,lbn\n\
             1,5633898,2a,512,42932745\n\
             1,5633899,28,6656,7\n\
             \n\
             1,5633900,0x88,4096,8\n",
        );
        assert_eq!(records.len(), 3);
        let first = records[0].as_ref().unwrap();
        assert_eq!(
            (first.ts, first.key.as_str(), first.op.as_str(), first.bytes),
            (5_633_898_000, "42932745", "write", 512)
        );
        assert_eq!((first.client.as_str(), first.region.as_str()), ("", ""));
        assert_eq!(records[1].as_ref().unwrap().op, "read");
        assert_eq!(records[2].as_ref().unwrap().op, "read");
    }

    #[test]
    fn malformed_rows_are_dead_letters() {
        let records = read(
            "version,time,op,size,lbn\n\
             1,x,2a,512,1\n\
             1,5,2a,512,block\n\
             1,5,35,512,1\n\
             1,5,2a,512\n\
             1,5,2a,-3,1\n\
             1,6,28,1,2\n",
        );
        let reasons: Vec<String> = records
            .iter()
            .filter_map(|r| r.as_ref().err().map(|d| d.reason.clone()))
            .collect();
        assert_eq!(reasons.len(), 5, "{reasons:?}");
        assert_eq!(reasons[0], "ts is not a number: \"x\"");
        assert_eq!(reasons[1], "lbn is not a non-negative integer: \"block\"");
        assert!(reasons[2].starts_with("unknown SCSI opcode \"35\""));
        assert_eq!(reasons[3], "expected 5 fields as in the header, found 4");
        assert!(reasons[4].starts_with("size is not"));
        let dead = records[1].as_ref().unwrap_err();
        assert_eq!(
            (dead.origin.as_str(), dead.raw.as_str()),
            ("file:io.csv:3", "1,5,2a,512,block")
        );
        assert_eq!(records[5].as_ref().unwrap().key, "2");
    }

    #[test]
    fn columns_are_found_by_name_and_may_be_missing() {
        let records = read("lbn,time\n9,1.5\n");
        let event = records[0].as_ref().unwrap();
        assert_eq!((event.ts, event.key.as_str()), (1500, "9"));
        assert_eq!((event.op.as_str(), event.bytes), ("read", 1));
        let err = TraceFile::from_reader(
            "io.csv",
            Box::new(Cursor::new(b"version,time,op\n1,2,28\n".to_vec())),
            TraceFormat::LibCacheSimCsv,
            TsUnit::Seconds,
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("no `lbn` column"), "{err}");
    }
}
