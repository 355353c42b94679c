//! Meta CacheLib key-value trace CSV, as cachebench's trace replay reads it:
//! `op_time,key,key_size,op,op_count,size,cache_hits,ttl,usecase,sub_usecase` (samples order the
//! columns differently, so they are found by header name).
//!
//! One event per row: key = `key`, ts = `op_time` seconds (or the synthetic row time when the column
//! is absent), size = `size` (the value's bytes), op = `op` in lower case (`get`, `set`, `delete`,
//! `get_lease`, ...), client = `usecase`. `op_count` (how many times the request repeated within the
//! row's second) and `sub_usecase` are kept in `attrs` rather than expanded, as cachebench does by
//! default.

use std::collections::BTreeMap;

use crate::csv_line::CsvFields;
use crate::{DeadLetter, Event, SourceError};

use super::stream::Lines;
use super::{
    check_width, optional, parse_u64, seconds_or_index, size_or_one, text_field, Header, Records,
};

/// The header of the CacheLib KV samples, shown when a file has none.
const EXPECTED_HEADER: &str =
    "op_time,key,key_size,op,op_count,size,cache_hits,ttl,usecase,sub_usecase";

/// Reads CacheLib KV rows.
pub(crate) struct CacheLibKv {
    lines: Lines,
    header: Header,
    key: usize,
    op_time: Option<usize>,
    op: Option<usize>,
    size: Option<usize>,
    usecase: Option<usize>,
    sub_usecase: Option<usize>,
    op_count: Option<usize>,
    fields: CsvFields,
}

impl CacheLibKv {
    /// Reads the header; only `key` is required.
    pub(crate) fn new(mut lines: Lines) -> Result<Self, SourceError> {
        let header = Header::read(&mut lines, EXPECTED_HEADER)?;
        Ok(CacheLibKv {
            key: header.require(&lines, "key")?,
            op_time: header.find("op_time"),
            op: header.find("op"),
            size: header.find("size"),
            usecase: header.find("usecase"),
            sub_usecase: header.find("sub_usecase"),
            op_count: header.find("op_count"),
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
        let key = text_field(fields, self.key, "key")?.trim();
        if key.is_empty() {
            return Err("missing key".into());
        }
        let ts = seconds_or_index(fields, self.op_time.map(|i| (i, "op_time")), index)?;
        let bytes = size_or_one(fields, self.size.map(|i| (i, "size")))?;
        let op = match optional(fields, self.op.map(|i| (i, "op")))? {
            Some("") => return Err("missing op".into()),
            Some(op) => op.to_ascii_lowercase(),
            None => "get".to_string(),
        };
        let client = optional(fields, self.usecase.map(|i| (i, "usecase")))?.unwrap_or("");
        let mut attrs = BTreeMap::new();
        if let Some(count) = optional(fields, self.op_count.map(|i| (i, "op_count")))? {
            parse_u64(count, "op_count")?;
            attrs.insert("op_count".to_string(), count.to_string());
        }
        if let Some(sub) = optional(fields, self.sub_usecase.map(|i| (i, "sub_usecase")))? {
            attrs.insert("sub_usecase".to_string(), sub.to_string());
        }
        Ok(Event {
            ts,
            key: key.to_string(),
            client: client.to_string(),
            region: String::new(),
            op,
            bytes,
            attrs,
        })
    }
}

impl Records for CacheLibKv {
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

    fn read(text: &str) -> Vec<Result<crate::Event, crate::DeadLetter>> {
        TraceFile::from_reader(
            "kv.csv",
            Box::new(Cursor::new(text.as_bytes().to_vec())),
            TraceFormat::CacheLibKv,
            TsUnit::Seconds,
        )
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    #[test]
    fn maps_columns_by_name_in_either_order() {
        let first = "op_time,key,key_size,op,op_count,size,cache_hits,ttl,usecase,sub_usecase\n\
                     604038471,82131353f9ddc8c6,48,GET,3,87,1,0,366387042,3003229276\n";
        let second = "op_time,key,key_size,op,op_count,size,cache_hits,usecase,sub_usecase,ttl\n\
                      604038471,82131353f9ddc8c6,48,GET,3,87,1,366387042,3003229276,0\n";
        let a = read(first).remove(0).unwrap();
        let b = read(second).remove(0).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.ts, 604_038_471_000);
        assert_eq!(a.key, "82131353f9ddc8c6");
        assert_eq!(
            (a.op.as_str(), a.bytes, a.client.as_str()),
            ("get", 87, "366387042")
        );
        assert_eq!(a.attrs["op_count"], "3");
        assert_eq!(a.attrs["sub_usecase"], "3003229276");
        assert_eq!(a.region, "");
    }

    #[test]
    fn malformed_rows_are_dead_letters() {
        let records = read(
            "op_time,key,op,size\n\
             1,k,GET_LEASE,10\n\
             x,k,GET,10\n\
             2,,GET,10\n\
             3,k,SET,big\n\
             4,k,SET\n",
        );
        assert_eq!(records[0].as_ref().unwrap().op, "get_lease");
        let reasons: Vec<&str> = records
            .iter()
            .filter_map(|r| r.as_ref().err().map(|d| d.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                "ts is not a number: \"x\"",
                "missing key",
                "size is not a non-negative integer: \"big\"",
                "expected 4 fields as in the header, found 3",
            ]
        );
        assert_eq!(records[1].as_ref().unwrap_err().origin, "file:kv.csv:3");
    }

    #[test]
    fn without_op_time_rows_get_synthetic_time() {
        let records = read("key\na\nb\n");
        let b = records[1].as_ref().unwrap();
        assert_eq!(
            (b.ts, b.key.as_str(), b.op.as_str(), b.bytes),
            (1, "b", "get", 1)
        );
    }
}
