//! The access event every source produces and every dataflow consumes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One access to one key by one client.
///
/// `ts` is event time in **milliseconds** since the Unix epoch; decoders of formats that carry seconds
/// convert. Field order makes the derived `Ord` sort by time first, which keeps consolidated batches in
/// event-time order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Event {
    /// Event time, milliseconds since the Unix epoch.
    pub ts: u64,
    /// The datum accessed (object, URL, block, message subject).
    pub key: String,
    /// Who accessed it (customer, host, consumer); empty when the source does not say.
    #[serde(default)]
    pub client: String,
    /// Where the access came from; empty when the source does not say (one region).
    #[serde(default)]
    pub region: String,
    /// Operation, e.g. `read`, `write`, `GET`.
    #[serde(default)]
    pub op: String,
    /// Size of the datum or of the transfer in bytes.
    #[serde(default)]
    pub bytes: u64,
    /// Free-form attributes (for example `home`, the customer's home region).
    #[serde(default)]
    pub attrs: BTreeMap<String, String>,
}

impl Event {
    /// The event-time epoch of this event for a tick of `tick_ms` milliseconds.
    pub fn epoch(&self, tick_ms: u64) -> u64 {
        self.ts / tick_ms.max(1)
    }
}
