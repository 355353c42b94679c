//! The ARC paper's `.lis` traces (Megiddo and Modha, FAST'03): text lines
//! `start_block nblocks ignore request_no`, each standing for `nblocks` requests of 512-byte pages
//! `start_block, start_block + 1, ...`, as the paper counts them. Order only: no time or client.

use crate::{DeadLetter, Event, SourceError};

use super::stream::Lines;
use super::Records;

/// Bytes per page: the traces count 512-byte blocks.
const PAGE_BYTES: u64 = 512;

/// Most pages one line may expand to. The real traces stay far below; a corrupt count must not turn
/// one line into billions of events.
const MAX_BLOCKS_PER_LINE: u64 = 1 << 20;

/// Reads `.lis` lines and expands them into page requests.
pub(crate) struct ArcLis {
    lines: Lines,
    /// The current line: its next page and how many pages are left after the current one, or why the
    /// line is rejected.
    current: Result<Span, String>,
}

/// The pages of one line still to hand out.
#[derive(Clone, Copy, Debug)]
struct Span {
    page: u64,
    left: u64,
}

impl ArcLis {
    /// Pages of the `.lis` lines read by `lines`.
    pub(crate) fn new(lines: Lines) -> Self {
        ArcLis {
            lines,
            current: Ok(Span { page: 0, left: 0 }),
        }
    }
}

/// The first page and the page count of a `.lis` line, or why it is rejected.
fn parse_line(line: &[u8]) -> Result<Span, String> {
    let mut fields = line
        .split(u8::is_ascii_whitespace)
        .filter(|field| !field.is_empty());
    let mut next = |what: &str| -> Result<&[u8], String> {
        fields.next().ok_or_else(|| {
            format!("expected 4 fields (start nblocks ignore reqno), {what} is missing")
        })
    };
    let number = |field: &[u8], what: &str| -> Result<u64, String> {
        std::str::from_utf8(field)
            .ok()
            .and_then(|text| text.parse::<u64>().ok())
            .ok_or_else(|| {
                let shown: String = String::from_utf8_lossy(field).chars().take(40).collect();
                format!("{what} is not a non-negative integer: {shown:?}")
            })
    };
    let start = number(next("start")?, "start")?;
    let blocks = number(next("nblocks")?, "nblocks")?;
    next("the third field")?;
    number(next("reqno")?, "reqno")?;
    if fields.next().is_some() {
        return Err("expected 4 fields (start nblocks ignore reqno), found more".into());
    }
    if blocks == 0 {
        return Err("nblocks is 0: the line requests no page".into());
    }
    if blocks > MAX_BLOCKS_PER_LINE {
        return Err(format!(
            "nblocks {blocks} exceeds {MAX_BLOCKS_PER_LINE} pages per line"
        ));
    }
    if start.checked_add(blocks - 1).is_none() {
        return Err("start + nblocks overflows a 64-bit block number".into());
    }
    Ok(Span {
        page: start,
        left: blocks - 1,
    })
}

impl Records for ArcLis {
    fn advance(&mut self) -> Result<bool, SourceError> {
        if let Ok(span) = &mut self.current {
            if span.left > 0 {
                span.page += 1;
                span.left -= 1;
                return Ok(true);
            }
        }
        if !self.lines.next_non_blank()? {
            return Ok(false);
        }
        self.current = parse_line(self.lines.line());
        Ok(true)
    }

    fn decode(&mut self, index: u64) -> Result<Event, DeadLetter> {
        match &self.current {
            Ok(span) => Ok(Event {
                ts: index,
                key: span.page.to_string(),
                client: String::new(),
                region: String::new(),
                op: "read".to_string(),
                bytes: PAGE_BYTES,
                attrs: Default::default(),
            }),
            Err(reason) => Err(DeadLetter::new(
                self.lines.origin(),
                reason.clone(),
                self.lines.line(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use crate::traces::{TraceFile, TraceFormat};
    use crate::TsUnit;

    fn read(text: &str) -> Vec<Result<crate::Event, crate::DeadLetter>> {
        TraceFile::from_reader(
            "OLTP.lis",
            Box::new(Cursor::new(text.as_bytes().to_vec())),
            TraceFormat::ArcLis,
            TsUnit::Seconds,
        )
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    #[test]
    fn lines_expand_to_consecutive_pages() {
        let records = read("110765 3 0 0\n\n7 1 0 1\r\n");
        let got: Vec<(u64, String, u64)> = records
            .into_iter()
            .map(|r| r.unwrap())
            .map(|e| (e.ts, e.key, e.bytes))
            .collect();
        assert_eq!(
            got,
            [
                (0, "110765".to_string(), 512),
                (1, "110766".to_string(), 512),
                (2, "110767".to_string(), 512),
                (3, "7".to_string(), 512),
            ]
        );
    }

    #[test]
    fn bad_lines_are_one_dead_letter_each() {
        let records = read(
            "1 2 0 0\n\
             x 1 0 1\n\
             5 0 0 2\n\
             5 1 0\n\
             5 99999999999 0 3\n\
             18446744073709551615 2 0 4\n\
             9 1 0 5\n",
        );
        assert_eq!(records.len(), 8);
        let reasons: Vec<&str> = records
            .iter()
            .filter_map(|r| r.as_ref().err().map(|d| d.reason.as_str()))
            .collect();
        assert_eq!(reasons.len(), 5, "{reasons:?}");
        assert_eq!(reasons[0], "start is not a non-negative integer: \"x\"");
        assert!(reasons[1].starts_with("nblocks is 0"));
        assert!(reasons[2].contains("reqno is missing"));
        assert!(reasons[3].contains("exceeds"));
        assert!(reasons[4].contains("overflows"));
        let dead = records[2].as_ref().unwrap_err();
        assert_eq!(
            (dead.origin.as_str(), dead.raw.as_str()),
            ("file:OLTP.lis:2", "x 1 0 1")
        );
        // Dead letters keep their place in time, so the last page is the 8th record.
        let last = records[7].as_ref().unwrap();
        assert_eq!((last.ts, last.key.as_str()), (7, "9"));
    }
}
