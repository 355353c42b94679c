//! The byte stream under every trace reader: decompression told by magic bytes (gzip, zstd, bzip2),
//! line reading with exact line numbers, and fixed-size binary records.

use std::io::{self, BufRead, BufReader, Read};

use bzip2::bufread::MultiBzDecoder;
use flate2::bufread::MultiGzDecoder;
use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};

use crate::SourceError;

/// The decompressed byte stream of a trace file.
pub(crate) type Stream = Box<dyn BufRead + Send>;

/// Read buffer size: large reads keep the decompressors and the system calls off the profile.
const BUFFER: usize = 256 * 1024;

/// How a trace file is compressed, told by its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
    Bzip2,
}

impl Compression {
    /// The compression whose magic number `head` starts with.
    pub(crate) fn sniff(head: &[u8]) -> Compression {
        match head {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
            // "BZh" and the block size digit; the digit keeps a text file that starts "BZh" readable.
            [b'B', b'Z', b'h', b'1'..=b'9', ..] => Compression::Bzip2,
            _ => Compression::None,
        }
    }
}

/// The decompressed content of `reader` (gzip, zstd or bzip2 told by the first bytes, else as is).
/// `name` names the file in errors.
pub(crate) fn decompressed(
    name: &str,
    reader: Box<dyn Read + Send>,
) -> Result<Stream, SourceError> {
    let mut raw = BufReader::with_capacity(BUFFER, reader);
    let head = raw.fill_buf().map_err(|e| io_error(name, e))?;
    Ok(match Compression::sniff(head) {
        Compression::None => Box::new(raw),
        Compression::Gzip => Box::new(BufReader::with_capacity(BUFFER, MultiGzDecoder::new(raw))),
        Compression::Bzip2 => Box::new(BufReader::with_capacity(BUFFER, MultiBzDecoder::new(raw))),
        Compression::Zstd => Box::new(BufReader::with_capacity(BUFFER, ZstdFrames::new(raw))),
    })
}

/// A [`SourceError::Io`] for the file `name`.
pub(crate) fn io_error(name: &str, source: io::Error) -> SourceError {
    SourceError::Io {
        path: name.to_string(),
        source,
    }
}

/// Decodes every frame of a zstd stream in turn. `ruzstd`'s streaming decoder stops after one frame,
/// while `zstd` and `cat a.zst b.zst` produce several; skippable frames are passed over. Each frame's
/// content checksum, when present, is verified so that a corrupt file is an error, not wrong records.
struct ZstdFrames<R: BufRead> {
    source: R,
    frame: FrameDecoder,
}

impl<R: BufRead> ZstdFrames<R> {
    fn new(source: R) -> Self {
        ZstdFrames {
            source,
            frame: FrameDecoder::new(),
        }
    }

    /// Checks the finished frame's checksum against the content read from it.
    fn verify_checksum(&self) -> io::Result<()> {
        match (
            self.frame.get_checksum_from_data(),
            self.frame.get_calculated_checksum(),
        ) {
            (Some(stored), Some(computed)) if stored != computed => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "zstd frame checksum mismatch: stored {stored:08x}, computed {computed:08x}"
                ),
            )),
            _ => Ok(()),
        }
    }
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.frame.can_collect() > 0 {
                let n = self.frame.read(buf)?;
                if self.frame.is_finished() && self.frame.can_collect() == 0 {
                    self.verify_checksum()?;
                }
                return Ok(n);
            }
            if !self.frame.is_finished() {
                self.frame
                    .decode_blocks(&mut self.source, BlockDecodingStrategy::UptoBlocks(1))
                    .map_err(corrupt)?;
                continue;
            }
            // The current frame (if any) is done: start the next one, or stop at the end of input.
            if self.source.fill_buf()?.is_empty() {
                return Ok(0);
            }
            match self.frame.reset(&mut self.source) {
                Ok(()) => {}
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                    length,
                    ..
                })) => {
                    let skipped = io::copy(
                        &mut (&mut self.source).take(u64::from(length)),
                        &mut io::sink(),
                    )?;
                    if skipped < u64::from(length) {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "zstd skippable frame is cut short",
                        ));
                    }
                }
                Err(e) => return Err(corrupt(e)),
            }
        }
    }
}

/// A zstd decoding error as an I/O error.
fn corrupt(e: FrameDecoderError) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("corrupt zstd stream: {e}"),
    )
}

/// Reads a text trace line by line into one reused buffer, counting lines (1-based, blank ones
/// included) so that a dead letter names the exact line.
pub(crate) struct Lines {
    name: String,
    stream: Stream,
    line: Vec<u8>,
    line_no: u64,
}

impl Lines {
    /// Lines of the decompressed stream of the file `name`.
    pub(crate) fn new(name: &str, stream: Stream) -> Self {
        Lines {
            name: name.to_string(),
            stream,
            line: Vec::with_capacity(256),
            line_no: 0,
        }
    }

    /// Reads the next line, without its terminator; `false` at the end of the stream.
    pub(crate) fn next_line(&mut self) -> Result<bool, SourceError> {
        self.line.clear();
        let read = self
            .stream
            .read_until(b'\n', &mut self.line)
            .map_err(|e| io_error(&self.name, e))?;
        if read == 0 {
            return Ok(false);
        }
        self.line_no += 1;
        while matches!(self.line.last(), Some(b'\n' | b'\r')) {
            self.line.pop();
        }
        Ok(true)
    }

    /// Reads up to the next line that is not blank; `false` at the end of the stream.
    pub(crate) fn next_non_blank(&mut self) -> Result<bool, SourceError> {
        while self.next_line()? {
            if !self.line.trim_ascii().is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The current line, without its terminator.
    pub(crate) fn line(&self) -> &[u8] {
        &self.line
    }

    /// The current line's number (1-based).
    pub(crate) fn line_no(&self) -> u64 {
        self.line_no
    }

    /// The file name used in origins and errors.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// `file:NAME:LINE` for the current line.
    pub(crate) fn origin(&self) -> String {
        format!("file:{}:{}", self.name, self.line_no())
    }
}

/// Reads a binary trace of fixed-size records of `N` bytes, counting records (1-based).
pub(crate) struct FixedRecords<const N: usize> {
    name: String,
    stream: Stream,
    record: [u8; N],
    /// Bytes of the current record that were read: `N`, or fewer for a record cut short by the end of
    /// the file.
    filled: usize,
    record_no: u64,
    ended: bool,
}

impl<const N: usize> FixedRecords<N> {
    /// Records of the decompressed stream of the file `name`.
    pub(crate) fn new(name: &str, stream: Stream) -> Self {
        FixedRecords {
            name: name.to_string(),
            stream,
            record: [0; N],
            filled: 0,
            record_no: 0,
            ended: false,
        }
    }

    /// Reads the next record; `false` at the end. A final record cut short is still returned once, so
    /// that it becomes a dead letter instead of vanishing; [`FixedRecords::complete`] tells it apart.
    pub(crate) fn next_record(&mut self) -> Result<bool, SourceError> {
        if self.ended {
            return Ok(false);
        }
        self.filled = 0;
        // Fast path: the whole record is already in the read buffer.
        let buffered = self
            .stream
            .fill_buf()
            .map_err(|e| io_error(&self.name, e))?;
        if let Some(bytes) = buffered.get(..N) {
            self.record.copy_from_slice(bytes);
            self.stream.consume(N);
            self.record_no += 1;
            self.filled = N;
            return Ok(true);
        }
        while self.filled < N {
            match self.stream.read(&mut self.record[self.filled..]) {
                Ok(0) => break,
                Ok(n) => self.filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(&self.name, e)),
            }
        }
        if self.filled < N {
            self.ended = true;
            if self.filled == 0 {
                return Ok(false);
            }
        }
        self.record_no += 1;
        Ok(true)
    }

    /// The current record's bytes (fewer than `N` when it was cut short).
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.record[..self.filled]
    }

    /// The current record when it is whole.
    pub(crate) fn complete(&self) -> Option<&[u8; N]> {
        (self.filled == N).then_some(&self.record)
    }

    /// `file:NAME:RECORD` for the current record (1-based).
    pub(crate) fn origin(&self) -> String {
        format!("file:{}:{}", self.name, self.record_no)
    }

    /// The reason a record cut short is rejected.
    pub(crate) fn truncated_reason(&self) -> String {
        format!(
            "truncated record: the file ends {} bytes into a {N}-byte record",
            self.filled
        )
    }
}

/// Lower-case hex of binary bytes, the raw text of a binary dead letter.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use super::*;

    fn stream(bytes: Vec<u8>) -> Result<Stream, SourceError> {
        decompressed("t", Box::new(Cursor::new(bytes)))
    }

    fn read_all(bytes: Vec<u8>) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        stream(bytes)
            .map_err(|e| io::Error::other(e.to_string()))?
            .read_to_end(&mut out)?;
        Ok(out)
    }

    /// A zstd frame holding `content` in one raw (uncompressed) block, optionally with a checksum
    /// field of the given value. Built by hand so that the test needs no zstd encoder.
    fn raw_zstd_frame(content: &[u8], checksum: Option<u32>) -> Vec<u8> {
        let mut frame = vec![0x28, 0xb5, 0x2f, 0xfd];
        // Frame header descriptor: single segment, 1-byte content size, checksum flag.
        let descriptor = 0x20 | if checksum.is_some() { 0x04 } else { 0 };
        frame.push(descriptor);
        frame.push(u8::try_from(content.len()).expect("short test content"));
        // Block header: last block, raw, size.
        let header = 1 | ((content.len() as u32) << 3);
        frame.extend_from_slice(&header.to_le_bytes()[..3]);
        frame.extend_from_slice(content);
        if let Some(sum) = checksum {
            frame.extend_from_slice(&sum.to_le_bytes());
        }
        frame
    }

    #[test]
    fn sniffs_magic_numbers() {
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(
            Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::sniff(b"BZh91AY&SY"), Compression::Bzip2);
        assert_eq!(Compression::sniff(b"BZh,x"), Compression::None);
        assert_eq!(Compression::sniff(b"1 1 0 0\n"), Compression::None);
        assert_eq!(Compression::sniff(b""), Compression::None);
    }

    #[test]
    fn reads_gzip_and_bzip2() {
        let text = b"1\n2\n3\n".repeat(1000);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&text).unwrap();
        assert_eq!(read_all(gz.finish().unwrap()).unwrap(), text);
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        bz.write_all(&text).unwrap();
        let bz = bz.finish().unwrap();
        assert_eq!(read_all(bz.clone()).unwrap(), text);
        // Two concatenated bzip2 streams read as one, as `bzcat` does.
        let mut twice = bz.clone();
        twice.extend_from_slice(&bz);
        assert_eq!(read_all(twice).unwrap(), text.repeat(2));
        assert!(read_all(bz[..bz.len() / 2].to_vec()).is_err());
    }

    #[test]
    fn reads_every_zstd_frame_and_skips_skippable_ones() {
        let mut bytes = raw_zstd_frame(b"1 1 0 0\n", None);
        // A skippable frame: magic 0x184D2A50, 4-byte length, payload.
        bytes.extend_from_slice(&0x184d_2a50u32.to_le_bytes());
        bytes.extend_from_slice(&3u32.to_le_bytes());
        bytes.extend_from_slice(b"xyz");
        bytes.extend_from_slice(&raw_zstd_frame(b"2 1 0 1\n", None));
        assert_eq!(read_all(bytes).unwrap(), b"1 1 0 0\n2 1 0 1\n");
    }

    #[test]
    fn corrupt_zstd_is_an_error() {
        let frame = raw_zstd_frame(b"1 1 0 0\n", None);
        assert!(read_all(frame[..frame.len() - 3].to_vec()).is_err());
        let wrong_sum = raw_zstd_frame(b"1 1 0 0\n", Some(0xdead_beef));
        let err = read_all(wrong_sum).unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
    }

    #[test]
    fn lines_count_blank_lines_and_strip_terminators() {
        let mut lines = Lines::new("t", stream(b"a\r\n\n  \nb".to_vec()).unwrap());
        assert!(lines.next_non_blank().unwrap());
        assert_eq!((lines.line(), lines.line_no()), (&b"a"[..], 1));
        assert!(lines.next_non_blank().unwrap());
        assert_eq!((lines.line(), lines.line_no()), (&b"b"[..], 4));
        assert_eq!(lines.origin(), "file:t:4");
        assert!(!lines.next_non_blank().unwrap());
    }

    #[test]
    fn fixed_records_report_a_cut_record_once() {
        let mut records = FixedRecords::<4>::new("t", stream(vec![1, 2, 3, 4, 5, 6]).unwrap());
        assert!(records.next_record().unwrap());
        assert_eq!(records.complete(), Some(&[1, 2, 3, 4]));
        assert!(records.next_record().unwrap());
        assert_eq!((records.complete(), records.bytes()), (None, &[5u8, 6][..]));
        assert_eq!(records.origin(), "file:t:2");
        assert!(records
            .truncated_reason()
            .contains("2 bytes into a 4-byte record"));
        assert!(!records.next_record().unwrap());
        assert_eq!(hex(records.bytes()), "0506");
    }
}
