//! Reusable timely and differential dataflow operators for shardcast.
//!
//! Each operator is an extension trait in its own file with the trait's contract (what it computes and how
//! it behaves with respect to time and frontiers) and a runnable example. Each is tested against a plain
//! implementation in [`reference`] over random inputs.

mod affinity;
mod balance_shards;
mod capabilities;
mod client_sequence;
pub mod forecast;
mod partition_choice;
mod prefetch_queue;
pub mod reference;
mod score;
mod similar_keys;
mod sliding_window;
#[doc(hidden)]
pub mod testing;
mod transitions;

pub use affinity::{Affinity, AffinityVectors};
pub use balance_shards::{BalanceShards, RoutingRow, ShardEvent, ShardRow};
pub use client_sequence::{
    client_steps_reference, ClientSequence, SequenceConfig, Step, TimedAccess,
};
pub use forecast::{ForecastLoad, ForecastRow, ForecastSettings, Forecaster};
pub use partition_choice::{Assignment, ChoosePartition, PartitionLoads, PartitionPolicy};
pub use prefetch_queue::{prefetch_queue_reference, PrefetchQueue, QueueConfig, QueueRow};
pub use score::Score;
pub use similar_keys::{
    estimated_similarity, share_a_band, signature, tokens, SimilarKeys, SimilarityConfig,
};
pub use sliding_window::SlidingWindow;
pub use transitions::{Successor, TransitionConfig, Transitions};
