//! Records that could not become events, kept with the reason instead of being dropped.

use serde::{Deserialize, Serialize};

/// A record that a source could not turn into an [`crate::Event`], or an event that arrived later than the
/// allowed lateness. Nothing is dropped silently: each one reaches the dead-letter output and is counted.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Where the record came from, e.g. `kafka://127.0.0.1:9092/events[2]@1041` or `file:trace.csv:17`.
    pub origin: String,
    /// Why it was rejected, e.g. `invalid JSON: expected value at line 1 column 1` or `late by 4200 ms`.
    pub reason: String,
    /// The raw record as text (lossy UTF-8), truncated to 4 KiB.
    pub raw: String,
}

impl DeadLetter {
    /// Largest raw payload kept, in bytes.
    pub const MAX_RAW: usize = 4096;

    /// A dead letter for `raw` bytes from `origin`, rejected for `reason`.
    pub fn new(origin: impl Into<String>, reason: impl Into<String>, raw: &[u8]) -> Self {
        let cut = raw.len().min(Self::MAX_RAW);
        DeadLetter {
            origin: origin.into(),
            reason: reason.into(),
            raw: String::from_utf8_lossy(&raw[..cut]).into_owned(),
        }
    }
}
