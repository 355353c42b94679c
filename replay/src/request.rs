//! Requests as the simulators see them: integers in place of the key, client and region strings of an
//! event, so that a replay of millions of requests compares and hashes machine words, not strings.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::ReplayError;

/// One access, in event-time order within a trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Request {
    /// Event time in milliseconds.
    pub ts_ms: u64,
    /// The object accessed (see [`KeyKind`] for how the id relates to the key's text).
    pub key: u32,
    /// The object's size in bytes as this request states it.
    pub size: u32,
    /// Who accessed it (an [`Interner`] id; one id for every request when the trace has no clients).
    pub client: u32,
    /// The region whose cache serves it (an [`Interner`] id).
    pub region: u16,
}

/// Numbers distinct strings densely from 0 in the order they are first seen.
#[derive(Clone, Debug, Default)]
pub struct Interner {
    ids: FxHashMap<String, u32>,
    names: Vec<String>,
}

impl Interner {
    /// An interner that has seen no names.
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of `name`, numbering it if it is new. Fails once 2^32 names are taken.
    pub fn intern(&mut self, name: &str) -> Result<u32, ReplayError> {
        if let Some(&id) = self.ids.get(name) {
            return Ok(id);
        }
        let id = u32::try_from(self.names.len()).map_err(|_| ReplayError::TooManyNames {
            what: "names",
            limit: u64::from(u32::MAX) + 1,
        })?;
        self.ids.insert(name.to_owned(), id);
        self.names.push(name.to_owned());
        Ok(id)
    }

    /// The id of `name` if it has been seen.
    pub fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    /// The name numbered `id`.
    pub fn name(&self, id: u32) -> Option<&str> {
        self.names.get(id as usize).map(String::as_str)
    }

    /// How many names have ids.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether no name has an id yet.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// How the key ids of a trace relate to its keys' text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyKind {
    /// Every key is a decimal integer (block numbers, object ids) and ids keep their differences:
    /// `key + d` names a real neighbour even when that neighbour was never requested, which is what
    /// lets a stride rule prefetch objects on their first access.
    Integer,
    /// Keys are arbitrary text numbered by an [`Interner`]; ids carry no order.
    Text,
}

/// The offset that maps signed 32-bit keys onto ids, keeping their order and differences.
const SIGNED_OFFSET: i64 = 1 << 31;

/// The key ids of a trace: integers mapped one to one, or an interner.
#[derive(Clone, Debug)]
pub enum KeyNames {
    /// Integer keys ([`KeyKind::Integer`]): the id is the key itself (keys in `0..2^32`), or the key
    /// plus 2^31 when the trace has negative keys (keys in `-2^31..2^31`).
    Integer {
        /// Whether ids are offset by 2^31.
        signed: bool,
    },
    /// Keys are numbered in order of first appearance ([`KeyKind::Text`]).
    Text(Interner),
}

impl KeyNames {
    /// Which kind of ids these are.
    pub fn kind(&self) -> KeyKind {
        match self {
            KeyNames::Integer { .. } => KeyKind::Integer,
            KeyNames::Text(_) => KeyKind::Text,
        }
    }

    /// The text of key `id`, as the trace wrote it.
    pub fn name(&self, id: u32) -> Option<String> {
        match self {
            KeyNames::Integer { signed: false } => Some(id.to_string()),
            KeyNames::Integer { signed: true } => Some((i64::from(id) - SIGNED_OFFSET).to_string()),
            KeyNames::Text(interner) => interner.name(id).map(str::to_owned),
        }
    }
}

/// A whole trace in simulator form, with the names behind its ids.
#[derive(Clone, Debug)]
pub struct Trace {
    /// The requests in the order they were pushed.
    pub requests: Vec<Request>,
    /// Key ids.
    pub keys: KeyNames,
    /// Client ids.
    pub clients: Interner,
    /// Region ids.
    pub regions: Interner,
}

impl Trace {
    /// Puts every request in region 0 (named `all`): one cache for the whole trace.
    pub fn single_region(mut self) -> Self {
        for request in &mut self.requests {
            request.region = 0;
        }
        let mut regions = Interner::new();
        // A fresh interner always has room for one name.
        let _ = regions.intern("all");
        self.regions = regions;
        self
    }
}

/// Builds a [`Trace`] from events one at a time. Keys stay integers while every key so far is a
/// canonical decimal integer (no sign but `-`, no leading zero) that fits the ids: `0..2^32`, or
/// `-2^31..2^31` once a negative key appears. At the first key that does not fit, every key becomes
/// interned text.
#[derive(Clone, Debug, Default)]
pub struct TraceBuilder {
    requests: Vec<Request>,
    keys: Keys,
    /// The largest integer key seen while ids are unsigned (decides whether signed ids can take over).
    max_unsigned: u32,
    clients: Interner,
    regions: Interner,
}

/// The key mode of a [`TraceBuilder`].
#[derive(Clone, Debug, Default)]
enum Keys {
    #[default]
    Unsigned,
    Signed,
    Text(Interner),
}

impl TraceBuilder {
    /// An empty trace, with integer keys until a key says otherwise.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty trace whose keys are always interned text, even when they look like integers.
    pub fn with_text_keys() -> Self {
        TraceBuilder {
            keys: Keys::Text(Interner::new()),
            ..Self::default()
        }
    }

    /// Appends one access. `size` is in bytes; an empty `client` or `region` is a name like any other
    /// (traces without clients put every request under the one empty client).
    pub fn push(
        &mut self,
        ts_ms: u64,
        key: &str,
        size: u64,
        client: &str,
        region: &str,
    ) -> Result<(), ReplayError> {
        let index = self.requests.len();
        let size = u32::try_from(size).map_err(|_| ReplayError::ObjectTooLarge { index, size })?;
        let key = self.key_id(key)?;
        let client = self
            .clients
            .intern(client)
            .map_err(|_| too_many("clients"))?;
        let region = u16::try_from(self.regions.intern(region)?).map_err(|_| {
            ReplayError::TooManyRegions {
                limit: u64::from(u16::MAX) + 1,
            }
        })?;
        self.requests.push(Request {
            ts_ms,
            key,
            size,
            client,
            region,
        });
        Ok(())
    }

    /// The number of requests pushed so far.
    pub fn len(&self) -> usize {
        self.requests.len()
    }

    /// Whether no request has been pushed.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// The trace built so far.
    pub fn finish(self) -> Trace {
        Trace {
            requests: self.requests,
            keys: match self.keys {
                Keys::Unsigned => KeyNames::Integer { signed: false },
                Keys::Signed => KeyNames::Integer { signed: true },
                Keys::Text(interner) => KeyNames::Text(interner),
            },
            clients: self.clients,
            regions: self.regions,
        }
    }

    fn key_id(&mut self, key: &str) -> Result<u32, ReplayError> {
        if !matches!(self.keys, Keys::Text(_)) {
            if let Some(value) = canonical_integer(key) {
                if let Keys::Unsigned = self.keys {
                    if let Ok(id) = u32::try_from(value) {
                        self.max_unsigned = self.max_unsigned.max(id);
                        return Ok(id);
                    }
                    if value < 0 && i64::from(self.max_unsigned) < SIGNED_OFFSET {
                        self.renumber_as_signed();
                    }
                }
                if let Keys::Signed = self.keys {
                    // Keys in -2^31..2^31 map onto 0..2^32.
                    if let Ok(id) = u32::try_from(value + SIGNED_OFFSET) {
                        return Ok(id);
                    }
                }
            }
            self.renumber_as_text()?;
        }
        match &mut self.keys {
            Keys::Text(interner) => interner.intern(key).map_err(|_| too_many("keys")),
            // `renumber_as_text` has just switched to text.
            Keys::Unsigned | Keys::Signed => Err(too_many("keys")),
        }
    }

    /// Moves unsigned ids (all below 2^31) to signed ids, which keeps their differences.
    fn renumber_as_signed(&mut self) {
        for request in &mut self.requests {
            request.key += 1 << 31;
        }
        self.keys = Keys::Signed;
    }

    /// Renumbers the integer keys seen so far as interned text. Only canonical integers were accepted,
    /// so their decimal text is exactly what the trace wrote.
    fn renumber_as_text(&mut self) -> Result<(), ReplayError> {
        let names = match self.keys {
            Keys::Unsigned => KeyNames::Integer { signed: false },
            Keys::Signed => KeyNames::Integer { signed: true },
            Keys::Text(_) => return Ok(()),
        };
        let mut interner = Interner::new();
        for request in &mut self.requests {
            let name = names.name(request.key).unwrap_or_default();
            request.key = interner.intern(&name).map_err(|_| too_many("keys"))?;
        }
        self.keys = Keys::Text(interner);
        Ok(())
    }
}

fn too_many(what: &'static str) -> ReplayError {
    ReplayError::TooManyNames {
        what,
        limit: u64::from(u32::MAX) + 1,
    }
}

/// `text` as an integer when it is written the one way `i64::to_string` writes it: digits with an
/// optional leading `-`, no leading zero, no `-0`. Anything else is text, so ids round-trip to the
/// same key.
fn canonical_integer(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let bytes = digits.as_bytes();
    let canonical = !bytes.is_empty()
        && bytes.len() <= 11
        && bytes.iter().all(u8::is_ascii_digit)
        && (bytes[0] != b'0' || (bytes.len() == 1 && digits.len() == text.len()));
    if canonical {
        text.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_keys_are_their_own_ids() {
        let mut builder = TraceBuilder::new();
        builder.push(0, "42", 10, "", "").unwrap();
        builder.push(1, "7", 10, "", "").unwrap();
        let trace = builder.finish();
        assert_eq!(trace.keys.kind(), KeyKind::Integer);
        assert_eq!(trace.requests[0].key, 42);
        assert_eq!(trace.requests[1].key, 7);
    }

    #[test]
    fn a_text_key_renumbers_earlier_integers() {
        let mut builder = TraceBuilder::new();
        builder.push(0, "42", 10, "a", "eu").unwrap();
        builder.push(1, "007", 10, "b", "us").unwrap();
        builder.push(2, "42", 10, "a", "eu").unwrap();
        let trace = builder.finish();
        assert_eq!(trace.keys.kind(), KeyKind::Text);
        let keys: Vec<u32> = trace.requests.iter().map(|r| r.key).collect();
        assert_eq!(keys, vec![0, 1, 0]);
        assert_eq!(trace.keys.name(1).as_deref(), Some("007"));
        assert_eq!(trace.keys.name(0).as_deref(), Some("42"));
        assert_eq!(trace.regions.name(1), Some("us"));
    }

    #[test]
    fn oversized_objects_are_an_error() {
        let mut builder = TraceBuilder::new();
        let err = builder.push(0, "1", 1 << 33, "", "").unwrap_err();
        assert!(matches!(err, ReplayError::ObjectTooLarge { index: 0, .. }));
    }

    #[test]
    fn negative_keys_switch_to_signed_ids_that_keep_differences() {
        let mut builder = TraceBuilder::new();
        for key in ["5", "-3", "2147483647", "-2147483648"] {
            builder.push(0, key, 1, "", "").unwrap();
        }
        let trace = builder.finish();
        assert_eq!(trace.keys.kind(), KeyKind::Integer);
        let ids: Vec<i64> = trace.requests.iter().map(|r| i64::from(r.key)).collect();
        assert_eq!(ids[0] - ids[1], 8);
        let names: Vec<String> = trace
            .requests
            .iter()
            .map(|r| trace.keys.name(r.key).unwrap())
            .collect();
        assert_eq!(names, vec!["5", "-3", "2147483647", "-2147483648"]);
    }

    #[test]
    fn keys_that_fit_no_ids_become_text() {
        for keys in [["3000000000", "-1"], ["-1", "3000000000"], ["1", "1.5"]] {
            let mut builder = TraceBuilder::new();
            for key in keys {
                builder.push(0, key, 1, "", "").unwrap();
            }
            let trace = builder.finish();
            assert_eq!(trace.keys.kind(), KeyKind::Text, "{keys:?}");
            assert_eq!(trace.keys.name(trace.requests[0].key).unwrap(), keys[0]);
            assert_eq!(trace.keys.name(trace.requests[1].key).unwrap(), keys[1]);
        }
    }

    #[test]
    fn canonical_integers_only() {
        assert_eq!(canonical_integer("0"), Some(0));
        assert_eq!(canonical_integer("-12"), Some(-12));
        assert_eq!(canonical_integer("4294967295"), Some(4294967295));
        for text in ["01", "+1", "", "-0", "-", "--1", "1 "] {
            assert_eq!(canonical_integer(text), None, "{text:?}");
        }
    }
}
