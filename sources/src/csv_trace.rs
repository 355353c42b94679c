//! Reading trace files: the normalized trace CSV (`ts,key,client,size,op,region`) or JSON lines, gzip
//! compressed or not, one record at a time with its line number.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::Path;
use std::str::FromStr;

use flate2::bufread::MultiGzDecoder;

use crate::csv_line::CsvFields;
use crate::{decode_json, DeadLetter, Event, SourceError};

/// The header every normalized trace CSV starts with; `size` becomes [`Event::bytes`].
pub const TRACE_CSV_HEADER: &str = "ts,key,client,size,op,region";

/// The first two bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The unit of the `ts` column of a trace CSV; events carry milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TsUnit {
    /// Seconds, the unit of the normalized traces.
    #[default]
    Seconds,
    /// Milliseconds.
    Millis,
    /// Microseconds.
    Micros,
}

impl TsUnit {
    /// Converts a whole number of this unit to milliseconds (saturating; microseconds round down).
    pub fn to_ms(self, value: u64) -> u64 {
        match self {
            TsUnit::Seconds => value.saturating_mul(1000),
            TsUnit::Millis => value,
            TsUnit::Micros => value / 1000,
        }
    }

    /// Parses a timestamp written in this unit, whole (`807256800`) or decimal (`807256800.25`), to
    /// milliseconds. The error says what is wrong with the text.
    pub fn parse_ms(self, text: &str) -> Result<u64, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("missing ts".into());
        }
        if let Ok(whole) = text.parse::<u64>() {
            return Ok(self.to_ms(whole));
        }
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => {
                let ms_per_unit = match self {
                    TsUnit::Seconds => 1000.0,
                    TsUnit::Millis => 1.0,
                    TsUnit::Micros => 0.001,
                };
                // `as` saturates at u64::MAX, which is the documented behaviour for huge values.
                Ok((v * ms_per_unit).floor() as u64)
            }
            Ok(_) => Err(format!("ts is negative or not finite: {text:?}")),
            Err(_) => Err(format!("ts is not a number: {text:?}")),
        }
    }
}

impl FromStr for TsUnit {
    type Err = SourceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "s" => Ok(TsUnit::Seconds),
            "ms" => Ok(TsUnit::Millis),
            "us" => Ok(TsUnit::Micros),
            other => Err(SourceError::Invalid(format!(
                "unknown timestamp unit {other:?}: expected s, ms or us"
            ))),
        }
    }
}

impl fmt::Display for TsUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TsUnit::Seconds => "s",
            TsUnit::Millis => "ms",
            TsUnit::Micros => "us",
        })
    }
}

/// How the records of a trace file are written; detected from the first non-empty line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileFormat {
    /// The normalized trace CSV with the header [`TRACE_CSV_HEADER`].
    Csv,
    /// One JSON object per line, decoded by [`decode_json`]; `ts` is already in milliseconds.
    JsonLines,
}

/// The decompressed byte stream of a trace file.
type Stream = Box<dyn BufRead + Send>;

/// Reads the records of one trace file in order, one per line. [`TraceReader::advance`] moves to the
/// next record and [`TraceReader::decode`] turns it into an event; they are separate so that a worker
/// can skip the records another worker decodes without paying for decoding them.
pub struct TraceReader {
    name: String,
    ts_unit: TsUnit,
    format: FileFormat,
    stream: Stream,
    /// The current record's line, without its line terminator.
    line: Vec<u8>,
    /// Line number of the current record (1-based, counting the header and blank lines).
    line_no: u64,
    /// Whether `advance` has found a record that `decode` may read.
    positioned: bool,
}

impl TraceReader {
    /// Opens a trace file, gzip compressed or not (told by its first bytes, not its name), and checks
    /// the header when it is a CSV. `ts_unit` applies to the CSV `ts` column.
    pub fn open(path: &Path, ts_unit: TsUnit) -> Result<Self, SourceError> {
        let io_error = |source| SourceError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = File::open(path).map_err(io_error)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        Self::from_reader(&name, Box::new(file), ts_unit)
    }

    /// Reads a trace from any byte stream; `name` appears in dead-letter origins (`file:NAME:LINE`)
    /// and errors.
    pub fn from_reader(
        name: &str,
        reader: Box<dyn Read + Send>,
        ts_unit: TsUnit,
    ) -> Result<Self, SourceError> {
        let mut raw = BufReader::new(reader);
        let is_gzip = raw
            .fill_buf()
            .map_err(|source| SourceError::Io {
                path: name.to_string(),
                source,
            })?
            .starts_with(&GZIP_MAGIC);
        let stream: Stream = if is_gzip {
            Box::new(BufReader::new(MultiGzDecoder::new(raw)))
        } else {
            Box::new(raw)
        };
        let mut reader = TraceReader {
            name: name.to_string(),
            ts_unit,
            format: FileFormat::JsonLines,
            stream,
            line: Vec::new(),
            line_no: 0,
            positioned: false,
        };

        // The first non-empty line decides the format and, for CSV, must be the header. An empty file
        // is an empty stream of JSON lines.
        if reader.advance()?.is_none() {
            return Ok(reader);
        }
        let first = String::from_utf8_lossy(&reader.line);
        let first = first.trim_start_matches('\u{feff}').trim();
        if first.starts_with('{') {
            // Put the line back so that it is decoded like the others.
            let mut line = std::mem::take(&mut reader.line);
            line.push(b'\n');
            let rest = std::mem::replace(&mut reader.stream, Box::new(std::io::empty()));
            reader.stream = Box::new(Cursor::new(line).chain(rest));
            reader.line_no -= 1;
            reader.positioned = false;
        } else if first == TRACE_CSV_HEADER {
            reader.format = FileFormat::Csv;
            reader.positioned = false;
        } else {
            let shown: String = first.chars().take(200).collect();
            return Err(SourceError::Invalid(format!(
                "{name}: expected the header `{TRACE_CSV_HEADER}` (or JSON lines), \
                 found `{shown}` on line {}",
                reader.line_no
            )));
        }
        Ok(reader)
    }

    /// The detected format.
    pub fn format(&self) -> FileFormat {
        self.format
    }

    /// The name used in origins.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Moves to the next record and returns its line number, or `None` at the end of the file. Blank
    /// lines are skipped. An error means the file itself cannot be read further (I/O or a corrupt gzip
    /// stream), not that a record is malformed.
    pub fn advance(&mut self) -> Result<Option<u64>, SourceError> {
        self.positioned = false;
        loop {
            self.line.clear();
            let read = self
                .stream
                .read_until(b'\n', &mut self.line)
                .map_err(|source| SourceError::Io {
                    path: self.name.clone(),
                    source,
                })?;
            if read == 0 {
                return Ok(None);
            }
            self.line_no += 1;
            while matches!(self.line.last(), Some(b'\n' | b'\r')) {
                self.line.pop();
            }
            if !self.line.trim_ascii().is_empty() {
                self.positioned = true;
                return Ok(Some(self.line_no));
            }
        }
    }

    /// Decodes the record [`TraceReader::advance`] stopped at; a malformed record becomes a dead letter
    /// with origin `file:NAME:LINE`.
    pub fn decode(&self) -> Result<Event, DeadLetter> {
        let origin = format!("file:{}:{}", self.name, self.line_no);
        if !self.positioned {
            return Err(DeadLetter::new(origin, "no record to decode", b""));
        }
        match self.format {
            FileFormat::Csv => decode_csv_line(&origin, &self.line, self.ts_unit),
            FileFormat::JsonLines => decode_json(&origin, self.line.trim_ascii()),
        }
    }
}

impl Iterator for TraceReader {
    /// Every record decoded; the outer error ends the file.
    type Item = Result<Result<Event, DeadLetter>, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.advance() {
            Ok(Some(_)) => Some(Ok(self.decode())),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

/// Decodes one row of the normalized trace CSV: `ts,key,client,size,op,region`.
fn decode_csv_line(origin: &str, line: &[u8], ts_unit: TsUnit) -> Result<Event, DeadLetter> {
    let reject = |reason: String| DeadLetter::new(origin, reason, line);
    let mut fields = CsvFields::default();
    fields.split(line).map_err(|e| reject(e.to_string()))?;
    if fields.len() != 6 {
        return Err(reject(format!(
            "expected 6 fields ({TRACE_CSV_HEADER}), found {}",
            fields.len()
        )));
    }
    let field = |i: usize| {
        std::str::from_utf8(fields.get(i))
            .map_err(|_| reject(format!("field {} is not valid UTF-8", column_name(i))))
    };
    let ts = ts_unit.parse_ms(field(0)?).map_err(reject)?;
    let key = field(1)?;
    if key.is_empty() {
        return Err(reject("missing key".into()));
    }
    let size = field(3)?.trim();
    let bytes = if size.is_empty() {
        0
    } else {
        size.parse::<u64>().map_err(|_| {
            reject(format!(
                "size is not a non-negative integer: {:?}",
                size.chars().take(40).collect::<String>()
            ))
        })?
    };
    Ok(Event {
        ts,
        key: key.to_string(),
        client: field(2)?.to_string(),
        region: field(5)?.to_string(),
        op: field(4)?.to_string(),
        bytes,
        attrs: Default::default(),
    })
}

/// The header name of CSV column `i`.
fn column_name(i: usize) -> &'static str {
    TRACE_CSV_HEADER.split(',').nth(i).unwrap_or("?")
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::write::GzEncoder;
    use flate2::Compression;

    use super::*;

    fn reader(bytes: &[u8]) -> Result<TraceReader, SourceError> {
        TraceReader::from_reader(
            "t.csv",
            Box::new(Cursor::new(bytes.to_vec())),
            TsUnit::Seconds,
        )
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    const SAMPLE: &str = "ts,key,client,size,op,region\n\
        807256800,/a.gif,host1,1713,GET,com\n\
        807256801,\"/b,c.html\",,,,\n\
        \n\
        oops,/c,h,1,GET,edu\n\
        807256802,/d,h,12x,GET,edu\n\
        807256803,,h,1,GET,edu\n\
        807256804,/e,h\n\
        807256805.5,/f,h,2,PUT,net\r\n";

    #[test]
    fn reads_csv_rows_and_dead_letters() {
        let records: Vec<_> = reader(SAMPLE.as_bytes())
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(records.len(), 7);
        let first = records[0].as_ref().unwrap();
        assert_eq!(first.ts, 807_256_800_000);
        assert_eq!(first.key, "/a.gif");
        assert_eq!(first.client, "host1");
        assert_eq!(first.bytes, 1713);
        assert_eq!(first.op, "GET");
        assert_eq!(first.region, "com");
        let second = records[1].as_ref().unwrap();
        assert_eq!(second.key, "/b,c.html");
        assert_eq!((second.bytes, second.client.as_str()), (0, ""));

        let dead: Vec<&DeadLetter> = records.iter().filter_map(|r| r.as_ref().err()).collect();
        assert_eq!(dead.len(), 4);
        assert_eq!(dead[0].origin, "file:t.csv:5");
        assert_eq!(dead[0].reason, "ts is not a number: \"oops\"");
        assert_eq!(dead[0].raw, "oops,/c,h,1,GET,edu");
        assert_eq!(dead[3].raw, "807256804,/e,h");
        assert_eq!(dead[1].origin, "file:t.csv:6");
        assert!(
            dead[1].reason.starts_with("size is not"),
            "{}",
            dead[1].reason
        );
        assert_eq!(dead[2].reason, "missing key");
        assert!(dead[3].reason.starts_with("expected 6 fields"));

        let last = records[6].as_ref().unwrap();
        assert_eq!((last.ts, last.region.as_str()), (807_256_805_500, "net"));
    }

    #[test]
    fn broken_quoting_is_a_dead_letter() {
        let data = "ts,key,client,size,op,region\n1,\"/open,h,1,GET,com\n2,ok,h,1,GET,com\n";
        let records: Vec<_> = reader(data.as_bytes())
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let dead = records[0].as_ref().unwrap_err();
        assert_eq!(dead.reason, "unterminated quoted field");
        assert_eq!(dead.origin, "file:t.csv:2");
        assert_eq!(records[1].as_ref().unwrap().key, "ok");
    }

    #[test]
    fn gzip_is_detected_by_content() {
        let mut r = reader(&gzip(SAMPLE.as_bytes())).unwrap();
        assert_eq!(r.format(), FileFormat::Csv);
        assert_eq!(r.advance().unwrap(), Some(2));
        assert_eq!(r.decode().unwrap().key, "/a.gif");
        assert_eq!(r.count(), 6);
    }

    #[test]
    fn wrong_header_names_the_expected_one() {
        let err = reader(b"time,key\n1,a\n").err().unwrap();
        let text = err.to_string();
        assert!(text.contains(TRACE_CSV_HEADER), "{text}");
        assert!(text.contains("time,key"), "{text}");
    }

    #[test]
    fn json_lines_are_detected() {
        let data = b"\n{\"ts\":1000,\"key\":\"a\"}\n\n{\"ts\":2000}\nnot json\n{\"ts\":3000,\"key\":\"b\"}";
        for bytes in [data.to_vec(), gzip(data)] {
            let mut r = reader(&bytes).unwrap();
            assert_eq!(r.format(), FileFormat::JsonLines);
            let mut lines = Vec::new();
            while let Some(line) = r.advance().unwrap() {
                lines.push((line, r.decode()));
            }
            assert_eq!(lines.iter().map(|l| l.0).collect::<Vec<_>>(), [2, 4, 5, 6]);
            assert_eq!(lines[0].1.as_ref().unwrap().ts, 1000);
            let missing = lines[1].1.as_ref().unwrap_err();
            assert_eq!(
                (missing.origin.as_str(), missing.reason.as_str()),
                ("file:t.csv:4", "missing field key")
            );
            assert!(lines[2]
                .1
                .as_ref()
                .unwrap_err()
                .reason
                .starts_with("invalid JSON"));
            assert_eq!(lines[3].1.as_ref().unwrap().key, "b");
        }
    }

    #[test]
    fn empty_input_has_no_records() {
        assert_eq!(reader(b"").unwrap().count(), 0);
        assert_eq!(reader(b"\n\n").unwrap().count(), 0);
        assert_eq!(
            reader(b"ts,key,client,size,op,region\n").unwrap().count(),
            0
        );
    }

    #[test]
    fn corrupt_gzip_is_an_error_not_a_panic() {
        let mut bytes = gzip(SAMPLE.as_bytes());
        bytes.truncate(bytes.len() / 2);
        let result: Result<Vec<_>, _> = reader(&bytes).and_then(|r| r.collect());
        assert!(result.is_err());
    }

    #[test]
    fn ts_units() {
        assert_eq!("s".parse::<TsUnit>().unwrap(), TsUnit::Seconds);
        assert_eq!("ms".parse::<TsUnit>().unwrap(), TsUnit::Millis);
        assert_eq!("us".parse::<TsUnit>().unwrap(), TsUnit::Micros);
        assert!("h".parse::<TsUnit>().is_err());
        assert_eq!(TsUnit::Seconds.parse_ms("2").unwrap(), 2000);
        assert_eq!(TsUnit::Millis.parse_ms(" 2 ").unwrap(), 2);
        assert_eq!(TsUnit::Micros.parse_ms("2500").unwrap(), 2);
        assert_eq!(TsUnit::Seconds.parse_ms("1.25").unwrap(), 1250);
        assert!(TsUnit::Seconds.parse_ms("-1").is_err());
        assert!(TsUnit::Seconds.parse_ms("").is_err());
        assert_eq!(TsUnit::Seconds.to_ms(u64::MAX), u64::MAX);
        for unit in [TsUnit::Seconds, TsUnit::Millis, TsUnit::Micros] {
            assert_eq!(unit.to_string().parse::<TsUnit>().unwrap(), unit);
        }
    }
}
