//! The LIRS paper's traces (Jiang and Zhang, SIGMETRICS'02): one integer block number per line, in
//! order; no time, size or client. A `*` line is a breakpoint for the LIRS simulator (print its stacks
//! here) and blank lines carry nothing: neither is a request, so both are passed over.

use crate::{DeadLetter, Event, SourceError};

use super::stream::Lines;
use super::Records;

/// Reads LIRS block numbers.
pub(crate) struct Lirs {
    lines: Lines,
}

impl Lirs {
    /// Requests of the LIRS lines read by `lines`.
    pub(crate) fn new(lines: Lines) -> Self {
        Lirs { lines }
    }
}

impl Records for Lirs {
    fn advance(&mut self) -> Result<bool, SourceError> {
        while self.lines.next_non_blank()? {
            if self.lines.line().trim_ascii() != b"*" {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn decode(&mut self, index: u64) -> Result<Event, DeadLetter> {
        let line = self.lines.line().trim_ascii();
        let block = std::str::from_utf8(line)
            .ok()
            .and_then(|text| text.parse::<u64>().ok());
        match block {
            Some(block) => Ok(Event {
                ts: index,
                key: block.to_string(),
                client: String::new(),
                region: String::new(),
                op: "read".to_string(),
                bytes: 1,
                attrs: Default::default(),
            }),
            None => Err(DeadLetter::new(
                self.lines.origin(),
                "expected one non-negative integer block number",
                self.lines.line(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use flate2::write::GzEncoder;

    use crate::traces::{TraceFile, TraceFormat};
    use crate::TsUnit;

    fn read(bytes: Vec<u8>) -> Vec<Result<crate::Event, crate::DeadLetter>> {
        TraceFile::from_reader(
            "cs.trace.gz",
            Box::new(Cursor::new(bytes)),
            TraceFormat::Lirs,
            TsUnit::Seconds,
        )
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    #[test]
    fn reads_gzip_blocks_and_skips_breakpoints_and_blank_lines() {
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"0\n1\n*\n007\n\n  2 \n*\n").unwrap();
        let records = read(gz.finish().unwrap());
        let got: Vec<(u64, String)> = records
            .into_iter()
            .map(|r| r.unwrap())
            .map(|e| (e.ts, e.key))
            .collect();
        let want: Vec<(u64, String)> = [(0, "0"), (1, "1"), (2, "7"), (3, "2")]
            .map(|(t, k)| (t, k.to_string()))
            .to_vec();
        assert_eq!(got, want);
    }

    #[test]
    fn non_numeric_lines_are_dead_letters() {
        let records = read(b"5\nfive\n-1\n1 2\n6\n".to_vec());
        assert_eq!(records.len(), 5);
        let dead: Vec<_> = records.iter().filter_map(|r| r.as_ref().err()).collect();
        assert_eq!(dead.len(), 3);
        assert_eq!(
            (dead[0].origin.as_str(), dead[0].raw.as_str()),
            ("file:cs.trace.gz:2", "five")
        );
        assert!(dead.iter().all(|d| d.reason.starts_with("expected one")));
        assert_eq!(records[4].as_ref().unwrap().ts, 4);
    }
}
