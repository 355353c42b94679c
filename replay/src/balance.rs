//! A trace replayed window by window through a shard balancer, measuring the balance each window
//! and what the balancer moved.

use rustc_hash::{FxHashMap, FxHashSet};
use shardcast_shardmap::{
    imbalance, ring_position, BalanceAction, BalanceConfig, BalanceDecision, BalanceMode, Balancer,
    HashRange, LoadForecaster, MapChange, ShardMap,
};

use crate::{BalanceReport, KeyNames, ReplayError, Request, Spread};

/// The layout and balancer of a balance replay.
#[derive(Clone, Debug, PartialEq)]
pub struct BalanceOptions {
    /// Length of a window, in the trace's milliseconds.
    pub window_ms: u64,
    /// Equal hash ranges at the start, placed round-robin over the nodes.
    pub initial_shards: u64,
    /// Nodes, named `node-0`, `node-1`, …
    pub nodes: usize,
    /// Replicas of each shard on the next nodes.
    pub replicas: usize,
    /// The balancer's settings (its `mode` is what [`compare_balance`] changes).
    pub config: BalanceConfig,
}

impl Default for BalanceOptions {
    /// One-minute windows, 16 shards over 8 nodes with one replica each, the default balancer.
    fn default() -> Self {
        BalanceOptions {
            window_ms: 60_000,
            initial_shards: 16,
            nodes: 8,
            replicas: 1,
            config: BalanceConfig::default(),
        }
    }
}

impl BalanceOptions {
    /// These options with the balancer in `mode`.
    pub fn with_mode(&self, mode: BalanceMode) -> BalanceOptions {
        let mut options = self.clone();
        options.config.mode = mode;
        options
    }

    fn check(&self) -> Result<(), ReplayError> {
        let bad = |field, reason: &str| {
            Err(ReplayError::InvalidConfig {
                field,
                reason: reason.into(),
            })
        };
        if self.window_ms == 0 {
            return bad("window_ms", "a window lasts at least 1 ms");
        }
        if self.initial_shards == 0 || self.nodes == 0 {
            return bad(
                "initial_shards",
                "the map needs at least one shard and one node",
            );
        }
        self.config
            .validate()
            .map_err(|e| ReplayError::InvalidConfig {
                field: "balance",
                reason: e.to_string(),
            })
    }
}

/// The same trace under the three balancers, from the same initial layout.
#[derive(Clone, Debug, PartialEq)]
pub struct BalanceComparison {
    /// Splits and moves on the forecast.
    pub predictive: BalanceReport,
    /// Splits after sustained load.
    pub reactive: BalanceReport,
    /// Never changes: static hashing.
    pub static_hashing: BalanceReport,
}

/// Replays `requests` (in time order) through a [`Balancer`] and measures it.
///
/// Each request is one unit of load on its key's ring position ([`ring_position`] of the key's
/// text, as the routing table places it). Windows are `ts_ms / window_ms`. For every window with
/// load the replay measures max / mean load over the shards of the map in force during it (the map
/// the balancer left after the previous window) and over the nodes, then hands the window's load to
/// the balancer and lets it decide; the keys of the window whose node differs between the map
/// before and after the decision count as moved. A quiet stretch is decided through like the live
/// operator does, window by window, up to `history` empty windows.
///
/// ```
/// use shardcast_replay::{
///     simulate_balance, BalanceMode, BalanceOptions, HoltForecaster, KeyNames, Request,
/// };
/// let requests: Vec<Request> = (0..6_000u64)
///     .map(|i| Request { ts_ms: i * 10, key: (i % 50) as u32, size: 1, client: 0, region: 0 })
///     .collect();
/// let options = BalanceOptions { window_ms: 1_000, ..BalanceOptions::default() };
/// let keys = KeyNames::Integer { signed: false };
/// let fixed = simulate_balance(&requests, &keys, &options.with_mode(BalanceMode::Static),
///     &mut HoltForecaster::default()).unwrap();
/// assert_eq!(fixed.windows, 60);
/// assert_eq!((fixed.splits, fixed.moves, fixed.load_moved), (0, 0, 0.0));
/// assert!(fixed.shard_balance.p50 >= 1.0);
/// ```
pub fn simulate_balance(
    requests: &[Request],
    keys: &KeyNames,
    options: &BalanceOptions,
    forecaster: &mut dyn LoadForecaster,
) -> Result<BalanceReport, ReplayError> {
    options.check()?;
    let nodes: Vec<String> = (0..options.nodes).map(|i| format!("node-{i}")).collect();
    let map = ShardMap::uniform(options.initial_shards, &nodes, options.replicas).map_err(|e| {
        ReplayError::InvalidConfig {
            field: "initial_shards",
            reason: e.to_string(),
        }
    })?;
    let mut balancer = Balancer::new(map, nodes.clone(), options.config.clone());
    let mut tally = Tally::new(&options.config, &nodes);
    let mut positions: FxHashMap<u32, u32> = FxHashMap::default();
    let mut previous_ts = 0u64;
    let mut current: Option<u64> = None;
    let mut window = WindowLoad::default();
    let quiet_limit = options.config.history.max(1) as u64;
    for (index, request) in requests.iter().enumerate() {
        if request.ts_ms < previous_ts {
            return Err(ReplayError::OutOfOrder {
                index,
                ts_ms: request.ts_ms,
                previous_ms: previous_ts,
            });
        }
        previous_ts = request.ts_ms;
        let w = request.ts_ms / options.window_ms;
        if current != Some(w) {
            if let Some(c) = current {
                tally.close(c, &mut window, &mut balancer, forecaster);
                // Decide through the quiet windows in between, as the live operator does.
                for quiet in (c + 1..w).take(quiet_limit as usize) {
                    tally.close(quiet, &mut window, &mut balancer, forecaster);
                }
            }
            current = Some(w);
        }
        let position = *positions.entry(request.key).or_insert_with(|| {
            let name = keys
                .name(request.key)
                .unwrap_or_else(|| request.key.to_string());
            ring_position(&name)
        });
        window.add(request.key, position);
    }
    if let Some(c) = current {
        tally.close(c, &mut window, &mut balancer, forecaster);
    }
    let span_ms = match (requests.first(), requests.last()) {
        (Some(first), Some(last)) => (last.ts_ms - first.ts_ms).max(options.window_ms),
        _ => options.window_ms,
    };
    Ok(tally.report(&options.config, &balancer, span_ms as f64 / 3_600_000.0))
}

/// [`simulate_balance`] under the predictive (with `forecaster`), reactive (`sustain_windows`) and
/// static balancers, all from the same initial layout.
pub fn compare_balance(
    requests: &[Request],
    keys: &KeyNames,
    options: &BalanceOptions,
    sustain_windows: u32,
    forecaster: &mut dyn LoadForecaster,
) -> Result<BalanceComparison, ReplayError> {
    let naive = &mut shardcast_shardmap::LastValueForecaster;
    Ok(BalanceComparison {
        predictive: simulate_balance(
            requests,
            keys,
            &options.with_mode(BalanceMode::Predictive),
            forecaster,
        )?,
        reactive: simulate_balance(
            requests,
            keys,
            &options.with_mode(BalanceMode::Reactive { sustain_windows }),
            naive,
        )?,
        static_hashing: simulate_balance(
            requests,
            keys,
            &options.with_mode(BalanceMode::Static),
            naive,
        )?,
    })
}

/// The accesses of one window.
#[derive(Default)]
struct WindowLoad {
    /// Accesses per ring position.
    loads: FxHashMap<u32, f64>,
    /// Distinct keys and their positions.
    keys: FxHashMap<u32, u32>,
}

impl WindowLoad {
    fn add(&mut self, key: u32, position: u32) {
        *self.loads.entry(position).or_insert(0.0) += 1.0;
        self.keys.insert(key, position);
    }

    fn total(&self) -> f64 {
        self.loads.values().sum()
    }
}

/// What the replay counts as it goes.
struct Tally {
    nodes: Vec<String>,
    shard_balance: Vec<f64>,
    node_balance: Vec<f64>,
    load_share: f64,
    key_share: f64,
    load_moved: f64,
    keys_moved: u64,
    move_back_window: u64,
    /// Ranges that left a node: (range, node, window).
    departures: Vec<(HashRange, String, u64)>,
    /// Ranges split: (range, window).
    split_ranges: Vec<(HashRange, u64)>,
    /// Shadow copies open: shard → (range, destination, window).
    open_shadows: FxHashMap<u64, (HashRange, String, u64)>,
    counts: BalanceReport,
    lead_sum: f64,
}

impl Tally {
    fn new(config: &BalanceConfig, nodes: &[String]) -> Self {
        Tally {
            nodes: nodes.to_vec(),
            shard_balance: Vec::new(),
            node_balance: Vec::new(),
            load_share: 0.0,
            key_share: 0.0,
            load_moved: 0.0,
            keys_moved: 0,
            move_back_window: 4 * config.cooldown_windows,
            departures: Vec::new(),
            split_ranges: Vec::new(),
            open_shadows: FxHashMap::default(),
            counts: BalanceReport::default(),
            lead_sum: 0.0,
        }
    }

    /// Measures `window` on the map in force, hands it to the balancer, and counts what moved.
    fn close(
        &mut self,
        w: u64,
        window: &mut WindowLoad,
        balancer: &mut Balancer,
        forecaster: &mut dyn LoadForecaster,
    ) {
        let total = window.total();
        let before = balancer.map().clone();
        if total > 0.0 {
            let mut shard_loads: FxHashMap<u64, f64> = FxHashMap::default();
            for (&p, &l) in &window.loads {
                *shard_loads
                    .entry(before.lookup_position(p).id)
                    .or_insert(0.0) += l;
            }
            let mut node_loads: FxHashMap<&str, f64> =
                self.nodes.iter().map(|n| (n.as_str(), 0.0)).collect();
            for shard in before.shards() {
                let load = shard_loads.get(&shard.id).copied().unwrap_or(0.0);
                *node_loads.entry(shard.node.as_str()).or_insert(0.0) += load;
            }
            self.shard_balance.push(imbalance(
                before
                    .shards()
                    .map(|s| shard_loads.get(&s.id).copied().unwrap_or(0.0)),
            ));
            self.node_balance.push(imbalance(node_loads.into_values()));
        }
        balancer.observe(w, window.loads.iter().map(|(&p, &l)| (p, l)));
        let decisions = balancer.decide(w, forecaster);
        if !decisions.is_empty() && total > 0.0 {
            let after = balancer.map();
            let mut moved_load = 0.0;
            let mut moved_positions: FxHashSet<u32> = FxHashSet::default();
            for (&p, &l) in &window.loads {
                if before.lookup_position(p).node != after.lookup_position(p).node {
                    moved_load += l;
                    moved_positions.insert(p);
                }
            }
            let moved_keys = window
                .keys
                .values()
                .filter(|p| moved_positions.contains(p))
                .count();
            self.load_share += moved_load / total;
            self.key_share += moved_keys as f64 / window.keys.len().max(1) as f64;
        }
        self.count(w, before, &decisions);
        window.loads.clear();
        window.keys.clear();
    }

    /// Counts the decisions of one round, replaying them on `map` (the map before them) to know
    /// the ranges they touch.
    fn count(&mut self, w: u64, mut map: ShardMap, decisions: &[BalanceDecision]) {
        let horizon = self.move_back_window;
        self.departures.retain(|(_, _, t)| w <= t + horizon);
        self.split_ranges.retain(|(_, t)| w <= t + horizon);
        for d in decisions {
            self.load_moved += d.load_moved;
            self.keys_moved += d.keys_moved;
            match &d.action {
                BalanceAction::Shadow {
                    shard, range, to, ..
                } => {
                    self.counts.shadows += 1;
                    self.open_shadows.insert(*shard, (*range, to.clone(), w));
                }
                BalanceAction::CancelShadow { shard, .. } => {
                    self.counts.shadows_cancelled += 1;
                    self.open_shadows.remove(shard);
                }
                BalanceAction::Change(change) => {
                    self.change(w, &map, change);
                    // The map replays what the balancer applied; a refusal cannot happen here
                    // and would only make the counts that follow less precise.
                    let _ = map.apply(change);
                }
            }
        }
    }

    fn change(&mut self, w: u64, map: &ShardMap, change: &MapChange) {
        match change {
            MapChange::Split { shard, .. } => {
                self.counts.splits += 1;
                if let Some(s) = map.get(*shard) {
                    self.split_ranges.push((s.range, w));
                }
            }
            MapChange::Merge { left, right, .. } => {
                self.counts.merges += 1;
                if let (Some(l), Some(r)) = (map.get(*left), map.get(*right)) {
                    let merged = HashRange {
                        lo: l.range.lo,
                        hi: r.range.hi,
                    };
                    if self.split_ranges.iter().any(|(range, _)| *range == merged) {
                        self.counts.move_backs += 1;
                    }
                }
            }
            MapChange::Move { shard, from, to } => {
                self.counts.moves += 1;
                let Some(range) = map.get(*shard).map(|s| s.range) else {
                    return;
                };
                let back = self
                    .departures
                    .iter()
                    .any(|(r, node, _)| node == to && r.lo < range.hi && range.lo < r.hi);
                if back {
                    self.counts.move_backs += 1;
                }
                self.departures.push((range, from.clone(), w));
                let promoted = self
                    .open_shadows
                    .iter()
                    .find(|(_, (r, node, _))| *r == range && node == to)
                    .map(|(id, (_, _, since))| (*id, *since));
                if let Some((id, since)) = promoted {
                    self.open_shadows.remove(&id);
                    if since < w {
                        self.counts.shadowed_moves += 1;
                        self.lead_sum += (w - since) as f64;
                    }
                }
            }
            MapChange::Failover { .. } | MapChange::Replicas { .. } => {}
        }
    }

    fn report(self, config: &BalanceConfig, balancer: &Balancer, hours: f64) -> BalanceReport {
        let hours = hours.max(f64::MIN_POSITIVE);
        BalanceReport {
            mode: match config.mode {
                BalanceMode::Static => "static",
                BalanceMode::Reactive { .. } => "reactive",
                BalanceMode::Predictive => "predictive",
            }
            .into(),
            windows: self.shard_balance.len() as u64,
            hours,
            load_moved_per_hour: self.load_share / hours,
            keys_moved_per_hour: self.key_share / hours,
            load_moved: self.load_moved,
            keys_moved: self.keys_moved,
            shadow_lead_windows: if self.counts.shadowed_moves > 0 {
                self.lead_sum / self.counts.shadowed_moves as f64
            } else {
                0.0
            },
            final_shards: balancer.map().shards().count(),
            shard_balance: Spread::of(self.shard_balance),
            node_balance: Spread::of(self.node_balance),
            ..self.counts
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(lo: u64, hi: u64) -> HashRange {
        HashRange { lo, hi }
    }

    fn decision(window: u64, change: MapChange) -> BalanceDecision {
        BalanceDecision {
            window,
            action: BalanceAction::Change(change),
            version: 0,
            reason: String::new(),
            shard_load: 0.0,
            forecast_peak: 0.0,
            load_moved: 0.0,
            keys_moved: 0,
            imbalance_before: 0.0,
            imbalance_after: 0.0,
            node_imbalance_before: 0.0,
            node_imbalance_after: 0.0,
        }
    }

    fn mv(window: u64, shard: u64, from: &str, to: &str) -> BalanceDecision {
        decision(
            window,
            MapChange::Move {
                shard,
                from: from.into(),
                to: to.into(),
            },
        )
    }

    #[test]
    fn move_backs_are_moves_home_and_merges_of_splits_within_four_cooldowns() {
        let nodes = vec!["a".to_string(), "b".to_string()];
        let config = BalanceConfig {
            cooldown_windows: 2,
            ..BalanceConfig::default()
        };
        let mut tally = Tally::new(&config, &nodes);
        let mut map = ShardMap::uniform(2, &nodes, 0).unwrap();
        // Shard 0 goes a -> b in window 0 and back in window 8 (= 4 × 2): a move-back.
        tally.count(0, map.clone(), &[mv(0, 0, "a", "b")]);
        map.apply(mv(0, 0, "a", "b").change().unwrap()).unwrap();
        tally.count(8, map.clone(), &[mv(8, 0, "b", "a")]);
        map.apply(mv(8, 0, "b", "a").change().unwrap()).unwrap();
        assert_eq!(tally.counts.move_backs, 1);
        // Back to b in window 20: it left b in window 8, more than 8 windows ago.
        tally.count(20, map.clone(), &[mv(20, 0, "a", "b")]);
        map.apply(mv(20, 0, "a", "b").change().unwrap()).unwrap();
        assert_eq!(tally.counts.move_backs, 1);
        assert_eq!(tally.counts.moves, 3);
        // A split of shard 1 merged back 3 windows later.
        let split = map.split_change(1, 3 << 30).unwrap();
        tally.count(21, map.clone(), &[decision(21, split.clone())]);
        map.apply(&split).unwrap();
        let MapChange::Split { left, .. } = split else {
            unreachable!()
        };
        let merge = map.merge_change(left).unwrap();
        tally.count(24, map.clone(), &[decision(24, merge)]);
        assert_eq!(tally.counts.move_backs, 2);
        assert_eq!((tally.counts.splits, tally.counts.merges), (1, 1));
        assert_eq!(tally.split_ranges, vec![(range(1 << 31, 1 << 32), 21)]);
    }

    #[test]
    fn bad_options_are_refused() {
        let requests = [Request {
            ts_ms: 5,
            key: 1,
            size: 1,
            client: 0,
            region: 0,
        }];
        let keys = KeyNames::Integer { signed: false };
        let naive = &mut shardcast_shardmap::LastValueForecaster;
        for options in [
            BalanceOptions {
                window_ms: 0,
                ..BalanceOptions::default()
            },
            BalanceOptions {
                nodes: 0,
                ..BalanceOptions::default()
            },
        ] {
            assert!(matches!(
                simulate_balance(&requests, &keys, &options, naive),
                Err(ReplayError::InvalidConfig { .. })
            ));
        }
        let backwards = [
            requests[0],
            Request {
                ts_ms: 1,
                ..requests[0]
            },
        ];
        assert!(matches!(
            simulate_balance(&backwards, &keys, &BalanceOptions::default(), naive),
            Err(ReplayError::OutOfOrder { index: 1, .. })
        ));
    }

    /// Background traffic over 3000 keys plus two keys that turn hot one after the other.
    fn skewed_trace() -> Vec<Request> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            state >> 33
        };
        let mut requests = Vec::new();
        for w in 0..300u64 {
            let hot = |start: u64| -> u64 {
                match w.saturating_sub(start) {
                    0 => 0,
                    d if d < 50 => 6 * d,
                    d if d < 120 => 300,
                    _ => 0,
                }
            };
            let mut keys: Vec<u32> = (0..1000).map(|_| (next() % 3000) as u32).collect();
            keys.extend(std::iter::repeat_n(5000, hot(40) as usize));
            keys.extend(std::iter::repeat_n(5001, hot(150) as usize));
            let n = keys.len() as u64;
            // Shuffle so the hot keys are spread over the window.
            for i in (1..keys.len()).rev() {
                keys.swap(i, (next() % (i as u64 + 1)) as usize);
            }
            for (i, key) in keys.into_iter().enumerate() {
                requests.push(Request {
                    ts_ms: w * 1000 + i as u64 * 1000 / n,
                    key,
                    size: 1,
                    client: 0,
                    region: 0,
                });
            }
        }
        requests
    }

    #[test]
    fn predictive_beats_static_hashing_on_a_skewed_trace_and_static_matches_a_recount() {
        let requests = skewed_trace();
        let keys = KeyNames::Integer { signed: false };
        let options = BalanceOptions {
            window_ms: 1000,
            ..BalanceOptions::default()
        };
        let mut holt = shardcast_shardmap::HoltForecaster::default();
        let c = compare_balance(&requests, &keys, &options, 3, &mut holt).unwrap();
        for r in [&c.predictive, &c.reactive, &c.static_hashing] {
            for s in [r.shard_balance, r.node_balance] {
                assert!(1.0 <= s.p50 && s.p50 <= s.p95 && s.p95 <= s.max, "{r:?}");
            }
            assert_eq!(r.windows, 300);
        }
        let fixed = &c.static_hashing;
        assert_eq!((fixed.splits, fixed.merges, fixed.moves), (0, 0, 0));
        assert_eq!(
            (fixed.load_moved_per_hour, fixed.keys_moved_per_hour),
            (0.0, 0.0)
        );
        assert_eq!(fixed.final_shards, 16);
        // Static hashing recounted window by window on the initial map.
        let nodes: Vec<String> = (0..8).map(|i| format!("node-{i}")).collect();
        let map = ShardMap::uniform(16, &nodes, 1).unwrap();
        let mut per_window: Vec<Vec<f64>> = vec![vec![0.0; 16]; 300];
        for r in &requests {
            let shard = map.lookup(&r.key.to_string()).id as usize;
            per_window[(r.ts_ms / 1000) as usize][shard] += 1.0;
        }
        let ratios: Vec<f64> = per_window
            .iter()
            .map(|loads| {
                let max = loads.iter().cloned().fold(0.0, f64::max);
                max * 16.0 / loads.iter().sum::<f64>()
            })
            .collect();
        let recount = Spread::of(ratios);
        assert!(
            (recount.p95 - fixed.shard_balance.p95).abs() < 1e-12,
            "{recount:?}"
        );
        assert!(
            (recount.max - fixed.shard_balance.max).abs() < 1e-12,
            "{recount:?}"
        );
        // Balancing pays: the hot keys get shards of their own.
        let p = &c.predictive;
        assert!(p.splits > 0 && p.moves > 0, "{p:?}");
        assert!(
            p.shard_balance.p95 < fixed.shard_balance.p95,
            "predictive {p:?} against static {fixed:?}"
        );
        assert!(p.load_moved_per_hour > 0.0 && p.keys_moved_per_hour > 0.0);
        eprintln!(
            "predictive {p:?}\nreactive {:?}\nstatic {fixed:?}",
            c.reactive
        );
    }
}
