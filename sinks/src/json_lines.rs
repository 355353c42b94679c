//! A sink writing the changelog as JSON lines to a file or stdout.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use crate::record::{canonical_order, encode_record};
use crate::{Change, Sink, SinkError};

/// Writes one JSON object per change, `{"table","key","version","diff","row"}`, one per line,
/// to stdout or appended to a file.
///
/// Guarantees: each version is encoded completely before anything is written, and then written
/// with a single `write_all` and flushed, so a version's lines are either all handed to the OS or
/// (on error) the version is not marked written and can be retried. Versions at or below the
/// highest version written by this instance are skipped; the file is appended to, so
/// idempotence across process restarts is not guaranteed by this sink.
pub struct JsonLinesSink {
    name: String,
    out: Box<dyn Write + Send>,
    last_version: Option<u64>,
}

impl JsonLinesSink {
    /// A sink writing to the process's standard output.
    pub fn stdout() -> Self {
        JsonLinesSink::from_writer("json:stdout", Box::new(std::io::stdout()))
    }

    /// A sink appending to the file at `path`, created if missing.
    pub fn file(path: impl AsRef<Path>) -> Result<Self, SinkError> {
        let path = path.as_ref();
        let name = format!("json:{}", path.display());
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| SinkError::Io {
                sink: name.clone(),
                source,
            })?;
        Ok(JsonLinesSink::from_writer(&name, Box::new(file)))
    }

    /// A sink writing to any writer (e.g. an in-memory buffer); `name` labels it in logs.
    pub fn from_writer(name: &str, out: Box<dyn Write + Send>) -> Self {
        JsonLinesSink {
            name: name.to_string(),
            out,
            last_version: None,
        }
    }

    fn io_error(&self, source: std::io::Error) -> SinkError {
        SinkError::Io {
            sink: self.name.clone(),
            source,
        }
    }
}

impl Sink for JsonLinesSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn write_version(&mut self, version: u64, changes: &[Change]) -> Result<(), SinkError> {
        if self.last_version.is_some_and(|last| version <= last) {
            tracing::debug!(sink = %self.name, version, "version already written; skipping");
            return Ok(());
        }
        let mut buf = Vec::new();
        for change in canonical_order(changes) {
            buf.extend_from_slice(&encode_record(version, change)?);
            buf.push(b'\n');
        }
        if !buf.is_empty() {
            self.out
                .write_all(&buf)
                .and_then(|()| self.out.flush())
                .map_err(|e| self.io_error(e))?;
        }
        self.last_version = Some(version);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(|e| self.io_error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A file in the system temp directory, removed when dropped.
    struct TempFile(std::path::PathBuf);

    impl TempFile {
        fn new(tag: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "shardcast-sinks-{tag}-{}-{:?}.jsonl",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_file(&path);
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn change(key: &str, diff: i64, version: u64) -> Change {
        Change {
            table: "assignments".into(),
            key: key.into(),
            row: json!({"customer": key, "region": "us-east"}),
            diff,
            version,
        }
    }

    fn read_changes(path: &Path) -> Vec<Change> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    #[test]
    fn writes_one_object_per_change_in_order() {
        let tmp = TempFile::new("order");
        let mut sink = JsonLinesSink::file(&tmp.0).unwrap();
        sink.write_version(1, &[change("c2", 1, 1), change("c1", 1, 1)])
            .unwrap();
        sink.write_version(2, &[]).unwrap();
        sink.write_version(3, &[change("c1", -1, 3)]).unwrap();
        sink.flush().unwrap();

        let text = std::fs::read_to_string(&tmp.0).unwrap();
        let first = text.lines().next().unwrap();
        assert!(
            first.starts_with(r#"{"table":"assignments","key":"c1","version":1,"diff":1,"row":"#),
            "{first}"
        );
        assert_eq!(
            read_changes(&tmp.0),
            [change("c1", 1, 1), change("c2", 1, 1), change("c1", -1, 3)]
        );
    }

    #[test]
    fn rewriting_an_old_version_is_skipped() {
        let tmp = TempFile::new("idem");
        let mut sink = JsonLinesSink::file(&tmp.0).unwrap();
        sink.write_version(1, &[change("c1", 1, 1)]).unwrap();
        sink.write_version(2, &[change("c2", 1, 2)]).unwrap();
        // A replay after a restart of the upstream: versions 1 and 2 again, then 3.
        sink.write_version(1, &[change("c1", 1, 1)]).unwrap();
        sink.write_version(2, &[change("c2", 1, 2)]).unwrap();
        sink.write_version(3, &[change("c3", 1, 3)]).unwrap();
        sink.flush().unwrap();
        assert_eq!(
            read_changes(&tmp.0),
            [change("c1", 1, 1), change("c2", 1, 2), change("c3", 1, 3)]
        );
    }

    #[test]
    fn file_is_appended_not_truncated() {
        let tmp = TempFile::new("append");
        JsonLinesSink::file(&tmp.0)
            .unwrap()
            .write_version(1, &[change("c1", 1, 1)])
            .unwrap();
        JsonLinesSink::file(&tmp.0)
            .unwrap()
            .write_version(2, &[change("c2", 1, 2)])
            .unwrap();
        assert_eq!(read_changes(&tmp.0).len(), 2);
    }

    #[test]
    fn unwritable_path_is_an_error_not_a_panic() {
        let dir = std::env::temp_dir().join("shardcast-sinks-no-such-dir-for-test");
        let err = JsonLinesSink::file(dir.join("x").join("y.jsonl"))
            .err()
            .expect("opening a file in a missing directory must fail");
        assert!(matches!(err, SinkError::Io { .. }));
    }
}
