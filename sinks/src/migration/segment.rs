//! Copying one segment of keys with a validation token (seed 002): the source versions of the
//! segment's keys when they were read. Before the segment counts as copied the token is checked
//! against the source again, and the segment is copied again if any key changed meanwhile.

use shardcast_shardmap::ring_position;

use super::{Entry, MigrationError, Node};

/// The source versions of a segment's keys when it was read (`None`: the key was absent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationToken(pub Vec<Option<u64>>);

/// A segment read from the source: its keys, the entries present, and their token.
#[derive(Clone, Debug)]
pub(crate) struct Segment {
    pub(crate) keys: Vec<String>,
    pub(crate) entries: Vec<Entry>,
    pub(crate) token: ValidationToken,
}

impl Segment {
    /// Bytes of the entries (keys and values).
    pub(crate) fn bytes(&self) -> u64 {
        self.entries.iter().map(Entry::bytes).sum()
    }
}

/// How a segment copy ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SegmentCopied {
    /// Bytes written to the destination over all attempts.
    pub(crate) bytes: u64,
    /// Entries in the segment (last attempt).
    pub(crate) keys: u64,
    /// Attempts made (1 if the token held the first time).
    pub(crate) attempts: u32,
    /// Whether the token held on the last attempt; if not, the keys that kept changing were
    /// written after the shadow began, so the delta log carries them.
    pub(crate) validated: bool,
}

/// Reads `keys` from the source with their token.
pub(crate) fn read_segment(source: &mut Node, keys: &[String]) -> Result<Segment, MigrationError> {
    let values = source.read_many(keys)?;
    let token = ValidationToken(values.iter().map(|v| v.as_ref().map(|v| v.ver)).collect());
    let entries = keys
        .iter()
        .zip(values)
        .filter_map(|(key, value)| {
            value.map(|value| Entry {
                key: key.clone(),
                position: ring_position(key),
                value,
            })
        })
        .collect();
    Ok(Segment {
        keys: keys.to_vec(),
        entries,
        token,
    })
}

/// Writes a segment to the destination (each entry only if newer there).
pub(crate) fn write_segment(
    dest: &mut Node,
    slot: &str,
    segment: &Segment,
) -> Result<u64, MigrationError> {
    dest.apply(slot, &segment.entries)?;
    Ok(segment.bytes())
}

/// Whether the source still holds the versions the segment was read at.
pub(crate) fn still_valid(source: &mut Node, segment: &Segment) -> Result<bool, MigrationError> {
    Ok(ValidationToken(source.versions(&segment.keys)?) == segment.token)
}

/// Copies `keys` from `source` to `dest`, re-reading and re-copying while the token fails, at
/// most `max_attempts` times.
pub(crate) fn copy_segment(
    source: &mut Node,
    dest: &mut Node,
    slot: &str,
    keys: &[String],
    max_attempts: u32,
) -> Result<SegmentCopied, MigrationError> {
    copy_segment_observed(source, dest, slot, keys, max_attempts, |_| {})
}

/// [`copy_segment`], calling `after_write(attempt)` between writing a segment and validating
/// its token (where a concurrent write to the source makes the token fail).
pub(crate) fn copy_segment_observed(
    source: &mut Node,
    dest: &mut Node,
    slot: &str,
    keys: &[String],
    max_attempts: u32,
    mut after_write: impl FnMut(u32),
) -> Result<SegmentCopied, MigrationError> {
    let mut copied = SegmentCopied::default();
    loop {
        copied.attempts += 1;
        let segment = read_segment(source, keys)?;
        copied.bytes += write_segment(dest, slot, &segment)?;
        copied.keys = segment.entries.len() as u64;
        after_write(copied.attempts);
        copied.validated = still_valid(source, &segment)?;
        if copied.validated || copied.attempts >= max_attempts.max(1) {
            return Ok(copied);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::{ConflictPolicy, OwnerState};
    use crate::testing::RedisServer;
    use shardcast_shardmap::{HashRange, RING};

    fn node(server: &RedisServer, name: &str) -> Node {
        Node::open(name, &server.url(), "t:", std::time::Duration::from_secs(2))
            .expect("the URL parses")
    }

    fn write(node: &mut Node, key: &str, value: &[u8], ts: u64) {
        node.write(
            "1",
            0,
            key,
            ring_position(key),
            value,
            ts,
            ConflictPolicy::LastWriterWins,
        )
        .expect("write");
    }

    #[test]
    fn a_segment_changed_after_its_copy_is_copied_again() {
        let (a, b) = (
            RedisServer::start().unwrap_or_else(|e| panic!("{e}")),
            RedisServer::start().unwrap_or_else(|e| panic!("{e}")),
        );
        let (mut source, mut dest) = (node(&a, "a"), node(&b, "b"));
        let mut writer = node(&a, "a");
        source
            .set_owner("1", 1, Some(OwnerState::rw(1, 0)))
            .expect("ownership");
        let keys: Vec<String> = (0..8).map(|i| format!("k{i}")).collect();
        for (i, key) in keys.iter().enumerate() {
            write(&mut source, key, b"v1", 10 + i as u64);
        }

        // A write lands on the source after the first copy of the segment was written: the
        // token must fail, and the second attempt must carry the new value.
        let mut seen_after_first = None;
        let copied = copy_segment_observed(&mut source, &mut dest, "1", &keys, 5, |attempt| {
            if attempt == 1 {
                write(&mut writer, "k3", b"v2", 100);
            }
        })
        .expect("copy");
        assert_eq!(
            copied.attempts, 2,
            "the changed segment was not copied again"
        );
        assert!(copied.validated);
        assert_eq!(copied.keys, 8);
        let k3 = dest.read_many(&["k3".to_string()]).expect("read")[0].clone();
        assert_eq!(k3.map(|v| (v.data, v.ts)), Some((b"v2".to_vec(), 100)));
        let whole = HashRange { lo: 0, hi: RING };
        assert_eq!(
            dest.checksum(whole).expect("checksum"),
            source.checksum(whole).expect("checksum")
        );

        // A segment nobody touches validates on the first attempt.
        let copied = copy_segment_observed(&mut source, &mut dest, "1", &keys, 5, |_| {
            seen_after_first = Some(());
        })
        .expect("copy");
        assert_eq!((copied.attempts, copied.validated), (1, true));
        assert!(seen_after_first.is_some());

        // A token taken before a change fails; one taken after holds.
        let segment = read_segment(&mut source, &keys).expect("read");
        assert!(still_valid(&mut source, &segment).expect("validate"));
        write(&mut writer, "k5", b"v3", 200);
        assert!(!still_valid(&mut source, &segment).expect("validate"));
    }
}
