//! The NASA Kennedy Space Center HTTP log as tab-separated values (the Imhotep sample's layout), header
//! `host logname time method url response bytes referer useragent`, time in Unix seconds.
//!
//! Fields map as the normalized NASA trace does: key = url, client = host, size = bytes, op = method,
//! region = the host's top-level domain (empty for a bare IP address or a name without a dot). A
//! `bytes` of `-` or empty (a response without a body, as in the Common Log Format) is 0 bytes.

use crate::{DeadLetter, Event, SourceError, TsUnit};

use super::stream::Lines;
use super::{parse_u64, Records};

/// The header of the NASA TSV, shown when a file lacks a column.
const EXPECTED_HEADER: &str =
    "host\tlogname\ttime\tmethod\turl\tresponse\tbytes\treferer\tuseragent";

/// Reads NASA TSV records.
pub(crate) struct NasaTsv {
    lines: Lines,
    width: usize,
    host: usize,
    time: usize,
    method: usize,
    url: usize,
    bytes: usize,
}

impl NasaTsv {
    /// Reads the header; it must name `host`, `time`, `method`, `url` and `bytes`.
    pub(crate) fn new(mut lines: Lines) -> Result<Self, SourceError> {
        let name = lines.name().to_string();
        if !lines.next_non_blank()? {
            return Err(SourceError::Invalid(format!(
                "{name}: expected the header `{EXPECTED_HEADER}`, found an empty file"
            )));
        }
        let header = String::from_utf8_lossy(lines.line()).into_owned();
        let columns: Vec<&str> = header
            .trim_start_matches('\u{feff}')
            .split('\t')
            .map(str::trim)
            .collect();
        let find = |column: &str| {
            columns.iter().position(|c| *c == column).ok_or_else(|| {
                SourceError::Invalid(format!(
                    "{name}: the header has no `{column}` column: expected `{EXPECTED_HEADER}`, \
                     found `{}`",
                    header.escape_default()
                ))
            })
        };
        Ok(NasaTsv {
            width: columns.len(),
            host: find("host")?,
            time: find("time")?,
            method: find("method")?,
            url: find("url")?,
            bytes: find("bytes")?,
            lines,
        })
    }

    fn event(&self) -> Result<Event, String> {
        let line = std::str::from_utf8(self.lines.line())
            .map_err(|_| "the line is not valid UTF-8".to_string())?;
        // Pick the five fields used without collecting the line into a vector.
        let wanted = [self.host, self.time, self.method, self.url, self.bytes];
        let mut picked = [""; 5];
        let mut width = 0;
        for (i, field) in line.split('\t').enumerate() {
            for (slot, column) in picked.iter_mut().zip(wanted) {
                if column == i {
                    *slot = field;
                }
            }
            width += 1;
        }
        if width != self.width {
            return Err(format!(
                "expected {} tab-separated fields as in the header, found {width}",
                self.width
            ));
        }
        let [host, time, method, url, bytes] = picked;
        let ts = TsUnit::Seconds.parse_ms(time)?;
        if url.is_empty() {
            return Err("missing url".into());
        }
        let bytes = match bytes.trim() {
            "" | "-" => 0,
            text => parse_u64(text, "bytes")?,
        };
        let host = host.trim();
        Ok(Event {
            ts,
            key: url.to_string(),
            client: host.to_string(),
            region: top_level_domain(host),
            op: method.trim().to_string(),
            bytes,
            attrs: Default::default(),
        })
    }
}

/// The lower-case top-level domain of a host name; empty for a bare IPv4 address (its last label is a
/// number) or a name without a dot.
fn top_level_domain(host: &str) -> String {
    match host.trim_end_matches('.').rsplit_once('.') {
        Some((_, tld)) if !tld.is_empty() && !tld.bytes().all(|b| b.is_ascii_digit()) => {
            tld.to_ascii_lowercase()
        }
        _ => String::new(),
    }
}

impl Records for NasaTsv {
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

    use super::top_level_domain;
    use crate::traces::{TraceFile, TraceFormat};
    use crate::TsUnit;

    const HEADER: &str = "host\tlogname\ttime\tmethod\turl\tresponse\tbytes\treferer\tuseragent\n";

    fn read(text: &str) -> Vec<Result<crate::Event, crate::DeadLetter>> {
        TraceFile::from_reader(
            "nasa.tsv",
            Box::new(Cursor::new(text.as_bytes().to_vec())),
            TraceFormat::NasaTsv,
            TsUnit::Seconds,
        )
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    #[test]
    fn maps_fields_like_the_normalized_trace() {
        let text = format!(
            "{HEADER}pppa006.compuserve.com\t-\t807256800\tGET\t/images/launch-logo.gif\t200\t1713\t\t\n\
             199.72.81.55\t-\t807256801\tHEAD\t/a,b.html\t304\t-\t\t\n\
             triton\t-\t807256802\tGET\t/x\t200\t0\t\t\n"
        );
        let events: Vec<_> = read(&text).into_iter().map(Result::unwrap).collect();
        assert_eq!(events.len(), 3);
        let first = &events[0];
        assert_eq!(first.ts, 807_256_800_000);
        assert_eq!(first.key, "/images/launch-logo.gif");
        assert_eq!(first.client, "pppa006.compuserve.com");
        assert_eq!(
            (first.op.as_str(), first.bytes, first.region.as_str()),
            ("GET", 1713, "com")
        );
        assert_eq!(
            (
                events[1].key.as_str(),
                events[1].op.as_str(),
                events[1].bytes,
                events[1].region.as_str()
            ),
            ("/a,b.html", "HEAD", 0, "")
        );
        assert_eq!(events[2].region, "");
    }

    #[test]
    fn malformed_rows_are_dead_letters() {
        let text = format!(
            "{HEADER}h.edu\t-\tnoon\tGET\t/a\t200\t1\t\t\n\
             h.edu\t-\t807256800\tGET\t/a\t200\tlots\t\t\n\
             h.edu\t-\t807256800\tGET\t/a\n\
             h.edu\t-\t807256800\tGET\t\t200\t1\t\t\n\
             h.edu\t-\t807256801\tGET\t/ok\t200\t1\t\t\n"
        );
        let records = read(&text);
        let reasons: Vec<&str> = records
            .iter()
            .filter_map(|r| r.as_ref().err().map(|d| d.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                "ts is not a number: \"noon\"",
                "bytes is not a non-negative integer: \"lots\"",
                "expected 9 tab-separated fields as in the header, found 5",
                "missing url",
            ]
        );
        assert_eq!(records[0].as_ref().unwrap_err().origin, "file:nasa.tsv:2");
        assert_eq!(records[4].as_ref().unwrap().key, "/ok");
    }

    #[test]
    fn a_missing_header_column_is_an_error() {
        let err = TraceFile::from_reader(
            "nasa.tsv",
            Box::new(Cursor::new(b"host\ttime\n".to_vec())),
            TraceFormat::NasaTsv,
            TsUnit::Seconds,
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("no `method` column"), "{err}");
    }

    #[test]
    fn top_level_domains() {
        assert_eq!(top_level_domain("www.NASA.Gov"), "gov");
        assert_eq!(top_level_domain("ftp.example.de."), "de");
        assert_eq!(top_level_domain("128.159.122.20"), "");
        assert_eq!(top_level_domain("localhost"), "");
        assert_eq!(top_level_domain(""), "");
    }
}
