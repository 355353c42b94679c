//! Meta CacheLib block (Tectonic) trace CSV, as cachebench's block replay reads it:
//! `op_time,block_id,block_id_size,io_size,io_offset,user_name,user_namespace,op_name,op_count,
//! host_name,rs_shard_id` (columns found by header name).
//!
//! One event per row: key = `block_id`, ts = `op_time` seconds (or the synthetic row time when the
//! column is absent), size = `io_size`, client = `user_name`, region = `host_name` (the machine the
//! request came from, the only placement the trace records). op is `read` for `getChunkData.*`, `write`
//! for `putChunk.*` and otherwise the operation's name; the full `op_name`, `io_offset`, `op_count` and
//! `rs_shard_id` (as `shard`) are kept in `attrs`.

use std::collections::BTreeMap;

use crate::csv_line::CsvFields;
use crate::{DeadLetter, Event, SourceError};

use super::stream::Lines;
use super::{
    check_width, optional, parse_u64, seconds_or_index, size_or_one, text_field, Header, Records,
};

/// The header of the CacheLib block samples, shown when a file has none.
const EXPECTED_HEADER: &str = "op_time,block_id,block_id_size,io_size,io_offset,user_name,\
                               user_namespace,op_name,op_count,host_name,rs_shard_id";

/// Optional columns copied into `attrs`: (column, attribute name, whether it must be an integer).
const ATTR_COLUMNS: [(&str, &str, bool); 4] = [
    ("op_name", "op_name", false),
    ("io_offset", "offset", true),
    ("op_count", "op_count", true),
    ("rs_shard_id", "shard", true),
];

/// Reads CacheLib block rows.
pub(crate) struct CacheLibBlock {
    lines: Lines,
    header: Header,
    block_id: usize,
    op_time: Option<usize>,
    io_size: Option<usize>,
    user_name: Option<usize>,
    host_name: Option<usize>,
    op_name: Option<usize>,
    attr_columns: [Option<usize>; 4],
    fields: CsvFields,
}

impl CacheLibBlock {
    /// Reads the header; only `block_id` is required.
    pub(crate) fn new(mut lines: Lines) -> Result<Self, SourceError> {
        let header = Header::read(&mut lines, EXPECTED_HEADER)?;
        Ok(CacheLibBlock {
            block_id: header.require(&lines, "block_id")?,
            op_time: header.find("op_time"),
            io_size: header.find("io_size"),
            user_name: header.find("user_name"),
            host_name: header.find("host_name"),
            op_name: header.find("op_name"),
            attr_columns: ATTR_COLUMNS.map(|(column, _, _)| header.find(column)),
            header,
            lines,
            fields: CsvFields::default(),
        })
    }

    fn event(&mut self, index: u64) -> Result<Event, String> {
        self.fields
            .split(self.lines.line())
            .map_err(str::to_string)?;
        let fields = &self.fields;
        check_width(fields, &self.header)?;
        let key = text_field(fields, self.block_id, "block_id")?.trim();
        if key.is_empty() {
            return Err("missing block_id".into());
        }
        let ts = seconds_or_index(fields, self.op_time.map(|i| (i, "op_time")), index)?;
        let bytes = size_or_one(fields, self.io_size.map(|i| (i, "io_size")))?;
        let op = match optional(fields, self.op_name.map(|i| (i, "op_name")))? {
            Some("") => return Err("missing op_name".into()),
            Some(name) => block_op(name),
            None => "read".to_string(),
        };
        let client = optional(fields, self.user_name.map(|i| (i, "user_name")))?.unwrap_or("");
        let region = optional(fields, self.host_name.map(|i| (i, "host_name")))?.unwrap_or("");
        let mut attrs = BTreeMap::new();
        for ((column, attr, numeric), index) in ATTR_COLUMNS.iter().zip(self.attr_columns) {
            if let Some(value) = optional(fields, index.map(|i| (i, *column)))? {
                if *numeric {
                    parse_u64(value, column)?;
                }
                attrs.insert(attr.to_string(), value.to_string());
            }
        }
        Ok(Event {
            ts,
            key: key.to_string(),
            client: client.to_string(),
            region: region.to_string(),
            op,
            bytes,
            attrs,
        })
    }
}

/// `read` for a chunk read (`getChunkData.*`), `write` for a chunk write (`putChunk.*`), else the
/// operation's name as written.
fn block_op(op_name: &str) -> String {
    let verb = op_name.split('.').next().unwrap_or(op_name);
    match verb {
        "getChunkData" => "read".to_string(),
        "putChunk" => "write".to_string(),
        _ => op_name.to_string(),
    }
}

impl Records for CacheLibBlock {
    fn advance(&mut self) -> Result<bool, SourceError> {
        self.lines.next_non_blank()
    }

    fn decode(&mut self, index: u64) -> Result<Event, DeadLetter> {
        self.event(index)
            .map_err(|reason| DeadLetter::new(self.lines.origin(), reason, self.lines.line()))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use crate::traces::{TraceFile, TraceFormat};
    use crate::TsUnit;

    const HEADER: &str = "op_time,block_id,block_id_size,io_size,io_offset,user_name,\
                          user_namespace,op_name,op_count,host_name,rs_shard_id\n";

    fn read(text: &str) -> Vec<Result<crate::Event, crate::DeadLetter>> {
        TraceFile::from_reader(
            "block.csv",
            Box::new(Cursor::new(text.as_bytes().to_vec())),
            TraceFormat::CacheLibBlock,
            TsUnit::Seconds,
        )
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    #[test]
    fn maps_block_rows() {
        let text = format!(
            "{HEADER}1702511878,12ce23eaa5534a38-9e05ce05bc10d4d0,40,8388608,0,4235083322,3487869255,getChunkData.NotInitialized,1,518845025,4\n\
             1702511879,cfb4,40,6307425,4096,57051220,3487869255,putChunk.Permanent,2,260099228,0\n\
             1702511880,cfb4,40,1,0,57051220,3487869255,removeChunk,1,260099228,0\n"
        );
        let events: Vec<_> = read(&text).into_iter().map(Result::unwrap).collect();
        let first = &events[0];
        assert_eq!(first.ts, 1_702_511_878_000);
        assert_eq!(first.key, "12ce23eaa5534a38-9e05ce05bc10d4d0");
        assert_eq!((first.bytes, first.op.as_str()), (8_388_608, "read"));
        assert_eq!(
            (first.client.as_str(), first.region.as_str()),
            ("4235083322", "518845025")
        );
        assert_eq!(first.attrs["shard"], "4");
        assert_eq!(first.attrs["op_name"], "getChunkData.NotInitialized");
        assert_eq!(
            (events[1].op.as_str(), events[1].attrs["offset"].as_str()),
            ("write", "4096")
        );
        assert_eq!(events[1].attrs["op_count"], "2");
        assert_eq!(events[2].op, "removeChunk");
    }

    #[test]
    fn malformed_rows_are_dead_letters() {
        let text = format!(
            "{HEADER}t,b,40,1,0,u,n,putChunk.Permanent,1,h,0\n\
             1,b,40,1,0,u,n,putChunk.Permanent,1,h,shard7\n\
             1,,40,1,0,u,n,putChunk.Permanent,1,h,0\n\
             1,b,40,1\n"
        );
        let reasons: Vec<String> = read(&text)
            .into_iter()
            .map(|r| r.unwrap_err().reason)
            .collect();
        assert_eq!(
            reasons,
            [
                "ts is not a number: \"t\"",
                "rs_shard_id is not a non-negative integer: \"shard7\"",
                "missing block_id",
                "expected 11 fields as in the header, found 4",
            ]
        );
    }
}
