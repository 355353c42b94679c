//! `[pipeline.NAME.shards]`: the shard map, its balancer, the routing API and the migration executor.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use shardcast_shardmap::{BalanceConfig, BalanceMode, Threshold};

use crate::Millis;

/// The shard family and what acts on it, as written in config.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShardsSection {
    /// Run the shard family (tables `shards` and `routing`).
    pub enabled: bool,
    /// Shards at start: equal hash ranges, placed round-robin over `nodes`.
    pub initial: u64,
    /// Names of the nodes shards are placed on.
    pub nodes: Vec<String>,
    /// Replicas per shard, on the next nodes.
    pub replicas: usize,
    /// `predictive` (split and merge on the forecast), `reactive` (after `sustain` above the threshold,
    /// as CockroachDB and TiKV do) or `static` (never change).
    pub mode: String,
    /// Split a shard whose load (forecast, in `predictive`) exceeds this multiple of the mean shard load
    /// of the initial layout.
    pub split_at: f64,
    /// Merge adjacent shards whose combined load stays under this multiple of that mean.
    pub merge_at: f64,
    /// `reactive`: how long a shard must stay above the threshold before it is split.
    pub sustain: Millis,
    /// `predictive`: epochs ahead the forecast is checked against the thresholds.
    pub horizon: usize,
    /// `predictive`: epochs beyond the forecast horizon at which a shadow copy is started for a move
    /// that the trend makes likely.
    pub shadow_lead: usize,
    /// `predictive`: a forecast counts as crossing `split_at` only when it clears it by this many
    /// times the shard's typical one-step forecast error (0 trusts the forecast as it is).
    pub confidence: f64,
    /// A shard changed is left alone this long.
    pub cooldown: Millis,
    /// The halves of a split are not merged back within this.
    pub merge_delay: Millis,
    /// At most this share of the epoch's load moves per round.
    pub churn_budget: f64,
    /// Never more shards than this.
    pub max_shards: usize,
    /// Decisions kept in the `routing` table.
    pub routing_history: usize,
    /// The routing HTTP API (`GET /v1/route/{key}`, `/v1/partition/{customer}`, `/v1/map`), or `off`.
    pub listen: String,
    /// Node name -> its Redis (`redis://HOST:PORT`): when set, the migration executor copies data and
    /// switches shards over between them.
    pub stores: BTreeMap<String, String>,
    /// Redis holding the routing store and the switchover locks (needed with `stores`).
    pub coordinator: Option<String>,
    /// Bandwidth of background shadow copies, bytes per second.
    pub copy_bytes_per_second: u64,
}

impl Default for ShardsSection {
    fn default() -> Self {
        ShardsSection {
            enabled: true,
            initial: 16,
            nodes: ["node-a", "node-b", "node-c", "node-d"]
                .map(String::from)
                .to_vec(),
            replicas: 1,
            mode: "predictive".into(),
            split_at: 2.0,
            merge_at: 1.0,
            sustain: Millis(3_000),
            horizon: 3,
            shadow_lead: 2,
            confidence: 1.0,
            cooldown: Millis(10_000),
            merge_delay: Millis(60_000),
            churn_budget: 0.1,
            max_shards: 256,
            routing_history: 1000,
            listen: "off".into(),
            stores: BTreeMap::new(),
            coordinator: None,
            copy_bytes_per_second: 8 << 20,
        }
    }
}

impl ShardsSection {
    /// The family's settings for epochs of `tick_ms`, with `history` epochs of load history.
    pub fn family_config(&self, tick_ms: u64, history: usize) -> crate::ShardsConfig {
        let epochs = |d: Millis| d.0.div_ceil(tick_ms.max(1));
        let mode = match self.mode.as_str() {
            "static" => BalanceMode::Static,
            "reactive" => BalanceMode::Reactive {
                sustain_windows: epochs(self.sustain).clamp(1, u64::from(u32::MAX)) as u32,
            },
            _ => BalanceMode::Predictive,
        };
        crate::ShardsConfig {
            initial: self.initial,
            nodes: self.nodes.clone(),
            replicas: self.replicas,
            balance: BalanceConfig {
                mode,
                split_load: Threshold::MeanMultiple(self.split_at),
                merge_load: Threshold::MeanMultiple(self.merge_at),
                horizon: self.horizon,
                shadow_lead: self.shadow_lead,
                confidence: self.confidence,
                cooldown_windows: epochs(self.cooldown),
                merge_delay_windows: epochs(self.merge_delay),
                churn_budget: self.churn_budget,
                max_shards: self.max_shards,
                history: history.max(1),
                ..BalanceConfig::default()
            },
            routing_history: self.routing_history,
            start: None,
        }
    }
}

/// Modes `mode` may name.
pub const SHARD_MODES: [&str; 3] = ["predictive", "reactive", "static"];

impl ShardsSection {
    /// Checks the section on its own; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if !SHARD_MODES.contains(&self.mode.as_str()) {
            return Err(format!(
                "shards.mode {:?}: use one of {}",
                self.mode,
                SHARD_MODES.join(", ")
            ));
        }
        if self.initial == 0 || self.nodes.is_empty() {
            return Err("shards.initial and shards.nodes need at least one shard and node".into());
        }
        if self.replicas >= self.nodes.len() && self.replicas > 0 {
            return Err(format!(
                "shards.replicas = {} needs more nodes than that ({} named)",
                self.replicas,
                self.nodes.len()
            ));
        }
        let finite = self.split_at.is_finite() && self.merge_at.is_finite();
        if !finite || self.merge_at < 0.0 || self.merge_at >= self.split_at {
            return Err(format!(
                "shards.split_at ({}) must be positive and above shards.merge_at ({}), which is >= 0",
                self.split_at, self.merge_at
            ));
        }
        if !(0.0..=1.0).contains(&self.churn_budget) {
            return Err(format!(
                "shards.churn_budget must be a share between 0 and 1 (got {})",
                self.churn_budget
            ));
        }
        if (self.max_shards as u64) < self.initial {
            return Err("shards.max_shards must be at least shards.initial".into());
        }
        if self.listen != "off" && self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!(
                "shards.listen {:?}: use an address such as 127.0.0.1:7070, or \"off\"",
                self.listen
            ));
        }
        for (node, url) in &self.stores {
            if !self.nodes.contains(node) {
                return Err(format!(
                    "shards.stores names {node:?}, which is not in shards.nodes"
                ));
            }
            if !url.starts_with("redis://") {
                return Err(format!(
                    "shards.stores.{node} {url:?}: use redis://HOST:PORT"
                ));
            }
        }
        if !self.stores.is_empty() {
            if let Some(missing) = self.nodes.iter().find(|n| !self.stores.contains_key(*n)) {
                return Err(format!("shards.stores has no store for node {missing:?}"));
            }
            match &self.coordinator {
                Some(url) if url.starts_with("redis://") => {}
                Some(url) => {
                    return Err(format!("shards.coordinator {url:?}: use redis://HOST:PORT"))
                }
                None => {
                    return Err(
                        "shards.stores needs shards.coordinator, the Redis for routing and locks"
                            .into(),
                    )
                }
            }
        }
        if !(self.confidence.is_finite() && self.confidence >= 0.0) {
            return Err(format!(
                "shards.confidence must be a finite number >= 0 (got {})",
                self.confidence
            ));
        }
        if self.horizon == 0 {
            return Err("shards.horizon must be at least 1".into());
        }
        if self.copy_bytes_per_second == 0 {
            return Err("shards.copy_bytes_per_second must be at least 1".into());
        }
        Ok(())
    }
}
