//! Readers for every trace format the project replays: the normalized CSV and JSON lines of
//! [`TraceReader`], and the public formats the traces come in (libCacheSim CSV and oracleGeneral,
//! ARC `.lis`, cache2k `.trc.bin`, LIRS, the NASA TSV, Meta CacheLib KV and block samples).
//!
//! Every reader turns a file into the same stream of [`Event`]s: one per request, in file order, with a
//! bad record kept as a [`DeadLetter`] that names the file and line (or binary record) it came from.
//! Files may be gzip, zstd or bzip2 compressed whatever their format; the first bytes tell.

mod arc_lis;
mod cache2k_trc;
mod cachelib_block;
mod cachelib_kv;
mod libcachesim_csv;
mod lirs;
mod nasa_tsv;
mod oracle_general;
mod stream;

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

use crate::csv_line::CsvFields;
use crate::{DeadLetter, Event, FileFormat, SourceError, TraceReader, TsUnit, TRACE_CSV_HEADER};

use stream::{decompressed, io_error, Lines};

/// How much of a file's decompressed start detection looks at.
const SNIFF_BYTES: u64 = 64 * 1024;

/// A trace file format.
///
/// [`FromStr`] accepts the names `normalized`, `jsonl`, `libcachesim-csv`, `oracle-general`, `arc-lis`,
/// `cache2k-trc`, `lirs`, `nasa-tsv`, `cachelib-kv` and `cachelib-block`; [`fmt::Display`] prints the
/// same names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TraceFormat {
    /// The normalized trace CSV, header `ts,key,client,size,op,region` (see [`TraceReader`]).
    Normalized,
    /// One JSON event per line, `ts` in milliseconds (see [`crate::decode_json`]).
    JsonLines,
    /// libCacheSim's CSV trace, header `version,time,op,size,lbn`: time in seconds, SCSI opcode,
    /// size in bytes, logical block number as the key.
    LibCacheSimCsv,
    /// libCacheSim's oracleGeneral binary: 24-byte little-endian records `u32 time (s), u64 obj_id,
    /// u32 obj_size, i64 next_access_vtime`.
    OracleGeneral,
    /// The ARC paper's `.lis` traces: lines `start nblocks ignore reqno`, each expanded to the
    /// `nblocks` 512-byte page requests `start, start+1, ...`; order only.
    ArcLis,
    /// cache2k's `.trc.bin`: big-endian 32-bit signed integer keys back to back; order only.
    Cache2kTrc,
    /// The LIRS paper's traces: one integer block number per line, `*` lines are breakpoints and are
    /// ignored; order only.
    Lirs,
    /// The NASA HTTP log as tab-separated values, header
    /// `host logname time method url response bytes referer useragent` (time in Unix seconds).
    NasaTsv,
    /// Meta CacheLib key-value trace CSV (`op_time,key,key_size,op,op_count,size,...,usecase,...`).
    CacheLibKv,
    /// Meta CacheLib block (Tectonic) trace CSV (`op_time,block_id,...,io_size,...,user_name,...`).
    CacheLibBlock,
}

impl TraceFormat {
    /// Every format, in the order their names are listed in messages.
    pub const ALL: [TraceFormat; 10] = [
        TraceFormat::Normalized,
        TraceFormat::JsonLines,
        TraceFormat::LibCacheSimCsv,
        TraceFormat::OracleGeneral,
        TraceFormat::ArcLis,
        TraceFormat::Cache2kTrc,
        TraceFormat::Lirs,
        TraceFormat::NasaTsv,
        TraceFormat::CacheLibKv,
        TraceFormat::CacheLibBlock,
    ];

    /// The format's name, as [`FromStr`] accepts it.
    fn name(self) -> &'static str {
        match self {
            TraceFormat::Normalized => "normalized",
            TraceFormat::JsonLines => "jsonl",
            TraceFormat::LibCacheSimCsv => "libcachesim-csv",
            TraceFormat::OracleGeneral => "oracle-general",
            TraceFormat::ArcLis => "arc-lis",
            TraceFormat::Cache2kTrc => "cache2k-trc",
            TraceFormat::Lirs => "lirs",
            TraceFormat::NasaTsv => "nasa-tsv",
            TraceFormat::CacheLibKv => "cachelib-kv",
            TraceFormat::CacheLibBlock => "cachelib-block",
        }
    }

    /// The accepted names, comma separated, for messages.
    fn names() -> String {
        TraceFormat::ALL.map(TraceFormat::name).join(", ")
    }

    /// Whether records carry real timestamps (false for order-only traces, whose events get the
    /// synthetic time described at [`TraceFile`]).
    pub fn has_timestamps(self) -> bool {
        !matches!(
            self,
            TraceFormat::ArcLis | TraceFormat::Cache2kTrc | TraceFormat::Lirs
        )
    }

    /// Guesses the format of the file at `path` from its name and first bytes (decompressed when it is
    /// gzip, zstd or bzip2). The binary formats are told by name (`*.oracleGeneral.bin`,
    /// `*.trc.bin`), the text formats by their first line: a known header, a JSON object, four
    /// integers (ARC) or one (LIRS). A file that fits none is an error naming the accepted formats.
    pub fn detect(path: &Path) -> Result<TraceFormat, SourceError> {
        let name = file_name(path);
        let file = File::open(path).map_err(|e| io_error(&path.display().to_string(), e))?;
        Self::detect_stream(&name, Box::new(file))
    }

    /// [`TraceFormat::detect`] on a byte stream; `name` is the file name.
    fn detect_stream(name: &str, reader: Box<dyn Read + Send>) -> Result<TraceFormat, SourceError> {
        if let Some(format) = Self::by_binary_name(name) {
            return Ok(format);
        }
        let unknown = |why: String| {
            SourceError::Invalid(format!(
                "cannot tell the trace format of {name}: {why}; name the format explicitly, one of: {}",
                TraceFormat::names()
            ))
        };
        // A binary file without newlines must not be read whole to find its "first line".
        let head = decompressed(name, reader)?.take(SNIFF_BYTES);
        let mut lines = Lines::new(name, Box::new(head));
        // LIRS breakpoints (`*`) say nothing about the format; look at the first line with content.
        let mut first = None;
        while lines.next_non_blank()? {
            if lines.line().trim_ascii() != b"*" {
                first = Some(lines.line());
                break;
            }
        }
        let Some(first) = first else {
            return Self::by_text_name(name).ok_or_else(|| unknown("it has no records".into()));
        };
        let Ok(first) = std::str::from_utf8(first) else {
            return Err(unknown(
                "it is not text, and its name does not end in .oracleGeneral.bin or .trc.bin"
                    .into(),
            ));
        };
        let first = first.trim_start_matches('\u{feff}').trim();
        if let Some(format) = Self::by_first_line(first) {
            return Ok(format);
        }
        let shown: String = first.chars().take(80).collect();
        Err(unknown(format!("its first line `{shown}` matches none")))
    }

    /// The binary formats, which only their names can tell.
    fn by_binary_name(name: &str) -> Option<TraceFormat> {
        let lower = name.to_ascii_lowercase();
        let base = strip_compression_suffix(&lower);
        if base.ends_with(".oraclegeneral.bin") || base.ends_with(".oraclegeneral") {
            Some(TraceFormat::OracleGeneral)
        } else if base.ends_with(".trc.bin") {
            Some(TraceFormat::Cache2kTrc)
        } else {
            None
        }
    }

    /// Text formats told by a file name, for files without a record to look at.
    fn by_text_name(name: &str) -> Option<TraceFormat> {
        let lower = name.to_ascii_lowercase();
        let base = strip_compression_suffix(&lower);
        let ext = base.rsplit_once('.').map(|(_, ext)| ext)?;
        match ext {
            "lis" => Some(TraceFormat::ArcLis),
            "trace" | "trc" => Some(TraceFormat::Lirs),
            "tsv" => Some(TraceFormat::NasaTsv),
            "jsonl" | "json" => Some(TraceFormat::JsonLines),
            _ => None,
        }
    }

    /// Text formats told by their first line with content.
    fn by_first_line(first: &str) -> Option<TraceFormat> {
        if first == TRACE_CSV_HEADER {
            return Some(TraceFormat::Normalized);
        }
        if first.starts_with('{') {
            return Some(TraceFormat::JsonLines);
        }
        let csv: Vec<&str> = first.split(',').map(str::trim).collect();
        let has = |column: &str| csv.contains(&column);
        if has("op_time") && has("block_id") {
            return Some(TraceFormat::CacheLibBlock);
        }
        if has("op_time") && has("key") {
            return Some(TraceFormat::CacheLibKv);
        }
        if has("time") && has("lbn") {
            return Some(TraceFormat::LibCacheSimCsv);
        }
        let tsv: Vec<&str> = first.split('\t').map(str::trim).collect();
        if tsv.contains(&"host") && tsv.contains(&"url") && tsv.contains(&"time") {
            return Some(TraceFormat::NasaTsv);
        }
        let words: Vec<&str> = first.split_ascii_whitespace().collect();
        if words.iter().all(|w| w.parse::<u64>().is_ok()) {
            match words.len() {
                1 => return Some(TraceFormat::Lirs),
                4 => return Some(TraceFormat::ArcLis),
                _ => {}
            }
        }
        None
    }
}

impl FromStr for TraceFormat {
    type Err = SourceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TraceFormat::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                SourceError::Invalid(format!(
                    "unknown trace format {s:?}: expected one of {}",
                    TraceFormat::names()
                ))
            })
    }
}

impl fmt::Display for TraceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `name` without a trailing `.gz`, `.zst`, `.zstd` or `.bz2`.
fn strip_compression_suffix(name: &str) -> &str {
    [".gz", ".zst", ".zstd", ".bz2"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .unwrap_or(name)
}

/// The last component of `path`, as dead-letter origins name the file.
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// The records of one trace format, read one at a time. `advance` and `decode` are separate so that a
/// worker can pass over the records another worker decodes without paying for decoding them.
pub(crate) trait Records: Send {
    /// Moves to the next record; `false` at the end of the file. An error means the file cannot be
    /// read further, not that a record is malformed.
    fn advance(&mut self) -> Result<bool, SourceError>;

    /// Decodes the record `advance` stopped at. `index` is its position among the file's records
    /// (0-based, dead letters included), which order-only formats use as the time in milliseconds.
    fn decode(&mut self, index: u64) -> Result<Event, DeadLetter>;
}

/// The normalized CSV and JSON lines, through the existing [`TraceReader`].
impl Records for TraceReader {
    fn advance(&mut self) -> Result<bool, SourceError> {
        Ok(TraceReader::advance(self)?.is_some())
    }

    fn decode(&mut self, _index: u64) -> Result<Event, DeadLetter> {
        TraceReader::decode(self)
    }
}

/// Every record of a trace file in order, as events or dead letters.
///
/// Order-only formats (ARC, cache2k, LIRS) get synthetic time: the i-th record (0-based, counting dead
/// letters too, so that one bad line does not shift the rest) has `ts = i` milliseconds, one request
/// per millisecond. Missing client and region are empty strings; a size the format does not carry is 1
/// (ARC pages are 512 bytes, as the format defines). Keys of integer traces are the decimal integer as
/// a string. `op` is `get`, `read`, `write` or the method or operation the trace names.
///
/// A dead letter's origin is `file:NAME:LINE` for text formats and `file:NAME:RECORD` (1-based) for
/// binary ones.
pub struct TraceFile {
    format: TraceFormat,
    records: Box<dyn Records>,
    /// Records advanced over so far.
    count: u64,
}

impl TraceFile {
    /// Opens the trace at `path` in `format`, or in the format [`TraceFormat::detect`] finds when
    /// `format` is `None`. Normalized CSV timestamps are read as seconds.
    pub fn open(path: &Path, format: Option<TraceFormat>) -> Result<TraceFile, SourceError> {
        Self::open_with_unit(path, format, TsUnit::Seconds)
    }

    /// [`TraceFile::open`] with the unit of the normalized CSV's `ts` column (the other formats fix
    /// their own units).
    pub(crate) fn open_with_unit(
        path: &Path,
        format: Option<TraceFormat>,
        ts_unit: TsUnit,
    ) -> Result<TraceFile, SourceError> {
        let format = match format {
            Some(format) => format,
            None => TraceFormat::detect(path)?,
        };
        let file = File::open(path).map_err(|e| io_error(&path.display().to_string(), e))?;
        Self::from_reader(&file_name(path), Box::new(file), format, ts_unit)
    }

    /// Reads a trace in `format` from any byte stream (compressed or not); `name` appears in origins
    /// and errors.
    pub(crate) fn from_reader(
        name: &str,
        reader: Box<dyn Read + Send>,
        mut format: TraceFormat,
        ts_unit: TsUnit,
    ) -> Result<TraceFile, SourceError> {
        let stream = decompressed(name, reader)?;
        let records: Box<dyn Records> = match format {
            TraceFormat::Normalized | TraceFormat::JsonLines => {
                let reader = TraceReader::from_reader(name, Box::new(stream), ts_unit)?;
                // The two are told apart by content, as `TraceReader` does, so the format reported is
                // the one found.
                format = match reader.format() {
                    FileFormat::Csv => TraceFormat::Normalized,
                    FileFormat::JsonLines => TraceFormat::JsonLines,
                };
                Box::new(reader)
            }
            TraceFormat::LibCacheSimCsv => Box::new(libcachesim_csv::LibCacheSimCsv::new(
                Lines::new(name, stream),
            )?),
            TraceFormat::OracleGeneral => {
                Box::new(oracle_general::OracleGeneral::new(name, stream))
            }
            TraceFormat::ArcLis => Box::new(arc_lis::ArcLis::new(Lines::new(name, stream))),
            TraceFormat::Cache2kTrc => Box::new(cache2k_trc::Cache2kTrc::new(name, stream)),
            TraceFormat::Lirs => Box::new(lirs::Lirs::new(Lines::new(name, stream))),
            TraceFormat::NasaTsv => Box::new(nasa_tsv::NasaTsv::new(Lines::new(name, stream))?),
            TraceFormat::CacheLibKv => {
                Box::new(cachelib_kv::CacheLibKv::new(Lines::new(name, stream))?)
            }
            TraceFormat::CacheLibBlock => Box::new(cachelib_block::CacheLibBlock::new(
                Lines::new(name, stream),
            )?),
        };
        Ok(TraceFile {
            format,
            records,
            count: 0,
        })
    }

    /// The format being read.
    pub fn format(&self) -> TraceFormat {
        self.format
    }

    /// Moves to the next record and returns its position (0-based, dead letters included), or `None`
    /// at the end of the file.
    pub(crate) fn advance(&mut self) -> Result<Option<u64>, SourceError> {
        if !self.records.advance()? {
            return Ok(None);
        }
        self.count += 1;
        Ok(Some(self.count - 1))
    }

    /// Decodes the record [`TraceFile::advance`] stopped at.
    pub(crate) fn decode(&mut self) -> Result<Event, DeadLetter> {
        self.records.decode(self.count.saturating_sub(1))
    }
}

impl Iterator for TraceFile {
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

/// The columns of a CSV trace, found by header name so that a file may order them as it likes
/// (CacheLib's two KV samples do).
pub(crate) struct Header {
    names: Vec<String>,
}

impl Header {
    /// Reads the first non-blank line of `lines` as a comma-separated header. `expected` describes
    /// the header in the error when there is none.
    pub(crate) fn read(lines: &mut Lines, expected: &str) -> Result<Header, SourceError> {
        let name = lines.name().to_string();
        let missing = |found: &str| {
            SourceError::Invalid(format!(
                "{name}: expected a header like `{expected}`, found {found}"
            ))
        };
        if !lines.next_non_blank()? {
            return Err(missing("an empty file"));
        }
        let text = String::from_utf8_lossy(lines.line());
        let text = text.trim_start_matches('\u{feff}');
        let mut fields = CsvFields::default();
        fields
            .split(text.as_bytes())
            .map_err(|e| missing(&format!("a broken line ({e})")))?;
        let names = (0..fields.len())
            .map(|i| String::from_utf8_lossy(fields.get(i)).trim().to_string())
            .collect();
        Ok(Header { names })
    }

    /// The position of column `name`, if the header has it.
    pub(crate) fn find(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// The position of column `name`, or an error naming the file and the columns found.
    pub(crate) fn require(&self, lines: &Lines, name: &str) -> Result<usize, SourceError> {
        self.find(name).ok_or_else(|| {
            SourceError::Invalid(format!(
                "{}: the header has no `{name}` column (found `{}`)",
                lines.name(),
                self.names.join(",")
            ))
        })
    }

    /// Number of columns.
    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }
}

/// Field `i` of a split CSV line as text; the error names the column.
pub(crate) fn text_field<'a>(
    fields: &'a CsvFields,
    i: usize,
    column: &str,
) -> Result<&'a str, String> {
    std::str::from_utf8(fields.get(i)).map_err(|_| format!("{column} is not valid UTF-8"))
}

/// Parses a non-negative integer field; the error names the column and shows the text.
pub(crate) fn parse_u64(text: &str, column: &str) -> Result<u64, String> {
    let text = text.trim();
    text.parse::<u64>().map_err(|_| {
        let shown: String = text.chars().take(40).collect();
        if shown.is_empty() {
            format!("missing {column}")
        } else {
            format!("{column} is not a non-negative integer: {shown:?}")
        }
    })
}

/// Reads an optional column of the current record: `Ok(None)` when the header lacks it.
pub(crate) fn optional<'a>(
    fields: &'a CsvFields,
    column: Option<(usize, &str)>,
) -> Result<Option<&'a str>, String> {
    column
        .map(|(i, name)| text_field(fields, i, name).map(str::trim))
        .transpose()
}

/// The optional size column of the current record in bytes, 1 when the header lacks it.
pub(crate) fn size_or_one(
    fields: &CsvFields,
    column: Option<(usize, &str)>,
) -> Result<u64, String> {
    match optional(fields, column)? {
        Some(size) => parse_u64(size, column.map_or("size", |(_, name)| name)),
        None => Ok(1),
    }
}

/// The optional timestamp column (seconds) of the current record in milliseconds; without the column,
/// the record's index, one request per millisecond, as for every order-only trace.
pub(crate) fn seconds_or_index(
    fields: &CsvFields,
    column: Option<(usize, &str)>,
    index: u64,
) -> Result<u64, String> {
    match optional(fields, column)? {
        Some(time) => crate::TsUnit::Seconds.parse_ms(time),
        None => Ok(index),
    }
}

/// Checks that a record has as many fields as the header, so that a shifted row is not read
/// silently with its values under the wrong columns.
pub(crate) fn check_width(fields: &CsvFields, header: &Header) -> Result<(), String> {
    if fields.len() == header.len() {
        Ok(())
    } else {
        Err(format!(
            "expected {} fields as in the header, found {}",
            header.len(),
            fields.len()
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use super::*;

    fn detect(name: &str, bytes: &[u8]) -> Result<TraceFormat, SourceError> {
        TraceFormat::detect_stream(name, Box::new(Cursor::new(bytes.to_vec())))
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn names_round_trip_and_unknown_names_list_the_accepted_ones() {
        for format in TraceFormat::ALL {
            assert_eq!(format.to_string().parse::<TraceFormat>().unwrap(), format);
        }
        assert_eq!(
            "arc-lis".parse::<TraceFormat>().unwrap(),
            TraceFormat::ArcLis
        );
        let err = "csv".parse::<TraceFormat>().unwrap_err().to_string();
        assert!(
            err.contains("\"csv\"") && err.contains("cachelib-block"),
            "{err}"
        );
    }

    #[test]
    fn only_order_only_formats_lack_timestamps() {
        let without: Vec<TraceFormat> = TraceFormat::ALL
            .into_iter()
            .filter(|f| !f.has_timestamps())
            .collect();
        assert_eq!(
            without,
            [
                TraceFormat::ArcLis,
                TraceFormat::Cache2kTrc,
                TraceFormat::Lirs
            ]
        );
    }

    #[test]
    fn detects_text_formats_by_first_line() {
        let cases: [(&str, &[u8], TraceFormat); 9] = [
            (
                "t.csv.gz",
                b"ts,key,client,size,op,region\n1,a,,,,\n",
                TraceFormat::Normalized,
            ),
            (
                "t.log",
                b"\n{\"ts\":1,\"key\":\"a\"}\n",
                TraceFormat::JsonLines,
            ),
            (
                "io.csv",
                b"version,time,op,size,lbn\n",
                TraceFormat::LibCacheSimCsv,
            ),
            ("x.lis.zst", b"1 1 0 0\n", TraceFormat::ArcLis),
            ("x.trace.gz", b"*\n17\n", TraceFormat::Lirs),
            (
                "n.tsv",
                b"host\tlogname\ttime\tmethod\turl\n",
                TraceFormat::NasaTsv,
            ),
            (
                "kv.csv",
                b"op_time,key,key_size,op,op_count,size,cache_hits,usecase,sub_usecase,ttl\n",
                TraceFormat::CacheLibKv,
            ),
            (
                "b.csv",
                b"op_time,block_id,block_id_size,io_size\n",
                TraceFormat::CacheLibBlock,
            ),
            ("noname", b"\xef\xbb\xbf0\n1\n", TraceFormat::Lirs),
        ];
        for (name, bytes, want) in cases {
            assert_eq!(detect(name, bytes).unwrap(), want, "{name}");
            assert_eq!(detect(name, &gzip(bytes)).unwrap(), want, "{name} gzip");
        }
    }

    #[test]
    fn detects_binary_formats_by_name() {
        let binary = [0x6a, 0xf7, 0x55, 0x00, 0x09, 0x1a];
        assert_eq!(
            detect("cloudPhysicsIO.oracleGeneral.bin", &binary).unwrap(),
            TraceFormat::OracleGeneral
        );
        assert_eq!(
            detect("trace-mt-db-busy.trc.bin.bz2", &binary).unwrap(),
            TraceFormat::Cache2kTrc
        );
        let err = detect("mystery.bin", &binary).unwrap_err().to_string();
        assert!(
            err.contains("mystery.bin") && err.contains("oracle-general"),
            "{err}"
        );
    }

    #[test]
    fn unknown_or_empty_text_is_a_clear_error() {
        let err = detect("t.csv", b"a,b,c\n1,2,3\n").unwrap_err().to_string();
        assert!(
            err.contains("`a,b,c`") && err.contains("normalized, jsonl"),
            "{err}"
        );
        assert!(detect("empty.csv", b"").is_err());
        assert_eq!(detect("empty.lis", b"\n").unwrap(), TraceFormat::ArcLis);
    }

    #[test]
    fn normalized_and_json_lines_go_through_the_trace_reader() {
        let csv = b"ts,key,client,size,op,region\n2,a,c,5,GET,eu\n3,b,c,oops,GET,eu\n";
        let file = TraceFile::from_reader(
            "t.csv.gz",
            Box::new(Cursor::new(gzip(csv))),
            TraceFormat::Normalized,
            TsUnit::Millis,
        )
        .unwrap();
        assert_eq!(file.format(), TraceFormat::Normalized);
        let records: Vec<_> = file.map(Result::unwrap).collect();
        assert_eq!(records[0].as_ref().unwrap().ts, 2);
        assert_eq!(records[1].as_ref().unwrap_err().origin, "file:t.csv.gz:3");

        let json = TraceFile::from_reader(
            "t.jsonl",
            Box::new(Cursor::new(b"{\"ts\":7,\"key\":\"k\"}\n".to_vec())),
            TraceFormat::Normalized,
            TsUnit::Seconds,
        )
        .unwrap();
        // The two are told apart by content, and the format reported is the one found.
        assert_eq!(json.format(), TraceFormat::JsonLines);
        assert_eq!(
            json.map(|r| r.unwrap().unwrap().ts).collect::<Vec<_>>(),
            [7]
        );
    }

    #[test]
    fn a_wrong_header_is_an_error_at_open() {
        for format in [
            TraceFormat::Normalized,
            TraceFormat::NasaTsv,
            TraceFormat::CacheLibKv,
            TraceFormat::CacheLibBlock,
            TraceFormat::LibCacheSimCsv,
        ] {
            let opened = TraceFile::from_reader(
                "t",
                Box::new(Cursor::new(b"time;key\n1;a\n".to_vec())),
                format,
                TsUnit::Seconds,
            );
            assert!(
                matches!(opened, Err(SourceError::Invalid(_))),
                "{format} accepted a wrong header"
            );
        }
    }
}
