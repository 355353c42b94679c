//! An access as the dataflows read it: the fields of an event every decision family needs.

use serde::{Deserialize, Serialize};
use shardcast_operators::PartitionPolicy;
use shardcast_sources::Event;

use crate::{home_of, AccessTuple};

/// One access, the input of every family.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Access {
    /// Event time, ms.
    pub ts: u64,
    /// The key accessed.
    pub key: String,
    /// The client (customer, consumer) that accessed it.
    pub client: String,
    /// The client's static partition (see [`home_of`]).
    pub home: String,
    /// Where the access came from.
    pub region: String,
    /// Size of the object, bytes.
    pub bytes: u64,
    /// The message's text (`attrs.payload`), for content similarity; empty when the event has none.
    pub payload: String,
}

impl Access {
    /// The access an event stands for.
    pub fn of(event: &Event, policy: &PartitionPolicy) -> Access {
        Access {
            ts: event.ts,
            key: event.key.clone(),
            client: event.client.clone(),
            home: home_of(event, policy),
            region: event.region.clone(),
            bytes: event.bytes,
            payload: event.attrs.get("payload").cloned().unwrap_or_default(),
        }
    }

    /// The tuple the affinity family reads.
    pub fn tuple(&self) -> AccessTuple {
        (
            self.key.clone(),
            self.client.clone(),
            self.home.clone(),
            self.region.clone(),
        )
    }
}
