//! The balancer: splits hot shards, merges cold neighbours and places the halves, window by window,
//! on the measured or the predicted load.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::placement::NodeLoads;
use crate::{
    imbalance, split_point, BalanceAction, BalanceConfig, BalanceDecision, BalanceError,
    BalanceMode, HashRange, LoadForecaster, LoadHistory, MapChange, Shard, ShardId, ShardMap,
    SplitPoint,
};

/// A shadow copy planned and not yet promoted by a move or cancelled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowPlan {
    /// The ring positions being copied.
    pub range: HashRange,
    /// The node serving them now.
    pub from: String,
    /// The node receiving the copy.
    pub to: String,
    /// The window the copy was planned in.
    pub since: u64,
}

/// Keeps a [`ShardMap`] in step with the load: every window, [`observe`](Balancer::observe) the
/// load per ring position, then [`decide`](Balancer::decide); the decisions are applied to the
/// balancer's map and returned as the changelog.
///
/// **Splits.** Predictive: a shard whose forecast crosses the split level within `horizon` windows
/// (by `confidence` times its typical one-step forecast error),
/// before its load gets there. Reactive: a shard whose measured load has been above the split level
/// for `sustain_windows` windows in a row. The cut is at the load-weighted median of its keys
/// ([`split_point`]), hottest shard first, while there are fewer than `max_shards`.
///
/// **Placement.** After a split, the half whose move to the node with the least predicted load
/// lowers the busier of the two nodes most moves there, within the churn budget. Predictive: as
/// soon as the forecast crosses the split level within `horizon + shadow_lead` windows, a
/// [`BalanceAction::Shadow`] names the range that will move and where, before the split is due; the
/// split then keeps that cut if it is nearly as good as the median (its busier half at most 10% of
/// the shard's load heavier) and the move promotes the copy; a shadow no longer wanted is cancelled.
///
/// **Merges.** Adjacent shards whose combined load is under the merge level now and (predictive)
/// over the horizon or (reactive) over the last `sustain_windows` windows, coldest pair first, while
/// there are more than `min_shards`. Shards on different nodes are first brought together by moving
/// the lighter one to the other's node.
///
/// **Anti-thrash.** A shard split, merged, moved or failed over is left alone for
/// `cooldown_windows` (its halves too); a half of a split is not merged within
/// `merge_delay_windows` (TiKV's PD likewise skips merging freshly split hot regions); the load
/// whose node changes in one round is at most `churn_budget` of the window's load, hottest need
/// first (Slicer bounds the churn of a rebalancing round the same way).
///
/// **Imbalance** is `max / mean` shard (or node) load: of the next window's forecast when
/// predictive, of the window just observed when reactive.
///
/// ```
/// use shardcast_shardmap::{
///     BalanceAction, BalanceConfig, BalanceMode, Balancer, HoltForecaster, MapChange, ShardMap,
///     Threshold,
/// };
/// let nodes: Vec<String> = ["a", "b"].map(String::from).to_vec();
/// let map = ShardMap::uniform(2, &nodes, 1).unwrap();
/// let config = BalanceConfig {
///     mode: BalanceMode::Reactive { sustain_windows: 2 },
///     split_load: Threshold::Load(50.0),
///     merge_load: Threshold::Load(1.0),
///     ..BalanceConfig::default()
/// };
/// let mut balancer = Balancer::new(map, nodes, config);
/// let mut splits = 0;
/// for window in 0..3 {
///     // Two busy keys in the lower shard, one quiet key in the upper one.
///     balancer.observe(window, [(1 << 20, 40.0), (1 << 21, 40.0), (u32::MAX, 5.0)]);
///     for d in balancer.decide(window, &mut HoltForecaster::default()) {
///         if let BalanceAction::Change(MapChange::Split { .. }) = d.action {
///             splits += 1;
///             assert_eq!(window, 1, "after two windows above 50");
///         }
///     }
/// }
/// assert_eq!(splits, 1);
/// assert_eq!(balancer.map().shards().count(), 3);
/// ```
#[derive(Clone, Debug)]
pub struct Balancer {
    map: ShardMap,
    nodes: Vec<String>,
    down: BTreeSet<String>,
    config: BalanceConfig,
    initial_shards: usize,
    loads: LoadHistory,
    /// The window being filled by `observe`.
    filling: Option<u64>,
    /// The latest window finished.
    finished: Option<u64>,
    /// Window of each shard's latest change (cooldowns).
    touched: HashMap<ShardId, u64>,
    /// Window of the split each shard was born of (merge delay).
    split_born: HashMap<ShardId, u64>,
    shadows: BTreeMap<ShardId, ShadowPlan>,
    ignored: f64,
    /// Each shard's forecast of the window now finishing (predictive), to measure the error.
    expected: HashMap<ShardId, f64>,
    /// Each shard's typical one-step forecast error (EWMA of the absolute error).
    errors: HashMap<ShardId, f64>,
}

/// Weight of the latest error in the forecast-error EWMA: about the last five windows count.
const ERROR_WEIGHT: f64 = 0.3;

/// What one round knows about one shard.
#[derive(Clone, Debug, Default)]
struct View {
    /// Load of the window just finished.
    now: f64,
    /// Keys seen in it.
    keys: u64,
    /// The load imbalance is measured on: forecast of the next window, or `now`.
    next: f64,
    /// The load placement plans for: peak forecast within the horizon, or `now`.
    plan: f64,
    /// Peak forecast within horizon and shadow lead (predictive).
    lead: f64,
    /// The loads checked against the merge levels (the horizon's forecasts, or the sustained
    /// windows).
    recent: Vec<f64>,
    /// The value reported as `forecast_peak`.
    peak: f64,
    due: bool,
    trending: bool,
    why: String,
}

impl View {
    /// The part of this view that a share `share` of its keys carries, with the exact latest-window
    /// load and keys of that part.
    fn part(&self, share: f64, now: f64, keys: u64) -> View {
        View {
            now,
            keys,
            next: self.next * share,
            plan: self.plan * share,
            lead: self.lead * share,
            recent: self.recent.iter().map(|v| v * share).collect(),
            peak: self.peak * share,
            due: false,
            trending: false,
            why: String::new(),
        }
    }

    fn plus(&self, other: &View) -> View {
        View {
            now: self.now + other.now,
            keys: self.keys + other.keys,
            next: self.next + other.next,
            plan: self.plan + other.plan,
            lead: self.lead + other.lead,
            recent: self
                .recent
                .iter()
                .zip(&other.recent)
                .map(|(a, b)| a + b)
                .collect(),
            peak: self.peak + other.peak,
            due: false,
            trending: false,
            why: String::new(),
        }
    }
}

/// One round of decisions.
struct Round {
    window: u64,
    views: HashMap<ShardId, View>,
    merge_now: f64,
    merge_levels: Vec<f64>,
    budget: f64,
    used: f64,
    touched: HashSet<ShardId>,
}

impl Round {
    fn view(&self, id: ShardId) -> View {
        self.views.get(&id).cloned().unwrap_or_default()
    }

    fn fits(&self, load: f64) -> bool {
        self.used + load <= self.budget + 1e-9 * self.budget.max(1.0)
    }
}

/// Shard-level and node-level imbalance at one moment.
#[derive(Clone, Copy, Debug, Default)]
struct Balance {
    shards: f64,
    nodes: f64,
}

/// Which half of a split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

impl Balancer {
    /// A balancer for `map`, placing shards on `nodes` (nodes named by the map are added if missing).
    /// Settings out of range are replaced by the nearest valid ones ([`BalanceConfig::clamped`]);
    /// use [`Balancer::try_new`] to have them refused instead.
    pub fn new(map: ShardMap, nodes: Vec<String>, config: BalanceConfig) -> Self {
        let config = config.clamped();
        let mut nodes = nodes;
        for shard in map.shards() {
            if !nodes.contains(&shard.node) {
                nodes.push(shard.node.clone());
            }
        }
        let loads = LoadHistory::new(
            &map,
            config.history,
            config.bucket_bits,
            config.key_decay,
            config.max_keys,
        );
        Balancer {
            initial_shards: map.shards().count(),
            map,
            nodes,
            down: BTreeSet::new(),
            config,
            loads,
            filling: None,
            finished: None,
            touched: HashMap::new(),
            split_born: HashMap::new(),
            shadows: BTreeMap::new(),
            ignored: 0.0,
            expected: HashMap::new(),
            errors: HashMap::new(),
        }
    }

    /// [`Balancer::new`], refusing settings out of range.
    pub fn try_new(
        map: ShardMap,
        nodes: Vec<String>,
        config: BalanceConfig,
    ) -> Result<Self, BalanceError> {
        config.validate()?;
        Ok(Self::new(map, nodes, config))
    }

    /// The current map.
    pub fn map(&self) -> &ShardMap {
        &self.map
    }

    /// The settings in force.
    pub fn config(&self) -> &BalanceConfig {
        &self.config
    }

    /// Every node shards may be placed on, down ones included.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// Whether `node` is marked down.
    pub fn is_down(&self, node: &str) -> bool {
        self.down.contains(node)
    }

    /// Shadow copies planned and not yet promoted or cancelled, by shard.
    pub fn shadows(&self) -> &BTreeMap<ShardId, ShadowPlan> {
        &self.shadows
    }

    /// The load history the balancer keeps (per shard, per bucket, per key).
    pub fn load_history(&self) -> &LoadHistory {
        &self.loads
    }

    /// Load that arrived for windows already finished, or was negative or not a number: left out
    /// of every decision.
    pub fn ignored_load(&self) -> f64 {
        self.ignored
    }

    /// Adds the loads of `window`, one `(ring position, load)` per key (a position may come more
    /// than once). A later window closes the earlier ones; loads for a window already closed are
    /// ignored (and counted in [`ignored_load`](Self::ignored_load)).
    pub fn observe(&mut self, window: u64, loads: impl IntoIterator<Item = (u32, f64)>) {
        let late = match (self.filling, self.finished) {
            (Some(f), _) => window < f,
            (None, Some(d)) => window <= d,
            (None, None) => false,
        };
        if late {
            self.ignored += loads
                .into_iter()
                .map(|(_, l)| if l.is_finite() { l.abs() } else { 0.0 })
                .sum::<f64>();
            return;
        }
        if self.filling != Some(window) {
            if let Some(f) = self.filling.take() {
                self.loads.finish(&self.map);
                self.finished = Some(f);
            }
            if let Some(d) = self.finished {
                self.loads.finish_empty(window - d - 1, &self.map);
            }
            self.filling = Some(window);
        }
        for (position, load) in loads {
            if load.is_finite() && load > 0.0 {
                self.loads.add(position, load);
            } else if load != 0.0 {
                self.ignored += if load.is_finite() { load.abs() } else { 0.0 };
            }
        }
    }

    /// Closes every window up to `window` (windows never observed count as empty).
    fn advance_to(&mut self, window: u64) {
        if let Some(f) = self.filling {
            if f > window {
                return;
            }
            self.filling = None;
            self.loads.finish(&self.map);
            self.finished = Some(f);
        }
        match self.finished {
            Some(d) if d >= window => {}
            Some(d) => self.loads.finish_empty(window - d, &self.map),
            None => self.loads.finish_empty(1, &self.map),
        }
        self.finished = Some(self.finished.map_or(window, |d| d.max(window)));
    }

    /// Decides after `window`: closes it, forecasts every shard's load with `forecaster`
    /// (predictive only), then splits, places, plans shadow copies and merges as the config says.
    /// The changes are applied to [`map`](Self::map) in the order returned; they take effect from
    /// the next window.
    pub fn decide(
        &mut self,
        window: u64,
        forecaster: &mut dyn LoadForecaster,
    ) -> Vec<BalanceDecision> {
        self.advance_to(window);
        let mut out = Vec::new();
        let sustain = match self.config.mode {
            BalanceMode::Static => return out,
            BalanceMode::Reactive { sustain_windows } => Some(sustain_windows.max(1) as usize),
            BalanceMode::Predictive => None,
        };
        if sustain.is_none() && self.loads.windows() < self.config.warmup_windows {
            return out;
        }
        if sustain.is_none() {
            self.track_errors();
        }
        let mut round = self.assess(window, forecaster, sustain);
        self.split_hot(&mut round, &mut out);
        if sustain.is_none() {
            self.plan_shadows(&round, &mut out);
        }
        self.merge_cold(&mut round, &mut out);
        let map = &self.map;
        self.touched.retain(|id, _| map.get(*id).is_some());
        self.split_born.retain(|id, _| map.get(*id).is_some());
        self.errors.retain(|id, _| map.get(*id).is_some());
        self.expected = if sustain.is_none() {
            map.shards()
                .map(|s| (s.id, round.view(s.id).next))
                .collect()
        } else {
            HashMap::new()
        };
        out
    }

    /// Folds the error of every shard's last one-step forecast into its typical error.
    fn track_errors(&mut self) {
        for shard in self.map.shards() {
            let Some(expected) = self.expected.get(&shard.id) else {
                continue;
            };
            let error = (self.loads.latest_in(shard.range).0 - expected).abs();
            let typical = self.errors.entry(shard.id).or_insert(error);
            *typical += ERROR_WEIGHT * (error - *typical);
        }
    }

    /// The margin a forecast of shard `id` must clear: `confidence` times its typical error.
    fn margin(&self, id: ShardId) -> f64 {
        self.config.confidence * self.errors.get(&id).copied().unwrap_or(0.0)
    }

    /// Marks `node` down and fails every shard it served over to its first live replica (to the
    /// least loaded live node when no replica is live: the data must then come from wherever it
    /// still is). Replica lists drop the node; shadow copies to or from it are cancelled.
    pub fn node_down(&mut self, node: &str) -> Vec<BalanceDecision> {
        let mut out = Vec::new();
        if !self.nodes.iter().any(|n| n == node) || !self.down.insert(node.to_string()) {
            return out;
        }
        let window = self.finished.unwrap_or(0);
        let mut round = self.plain_round(window);
        let cancelled: Vec<ShardId> = self
            .shadows
            .iter()
            .filter(|(_, s)| s.to == node || s.from == node)
            .map(|(id, _)| *id)
            .collect();
        for id in cancelled {
            if let Some(plan) = self.shadows.remove(&id) {
                let b = self.balance(&round);
                out.push(self.record(
                    &round,
                    BalanceAction::CancelShadow {
                        shard: id,
                        to: plan.to,
                    },
                    format!("node {node} is down"),
                    id,
                    (0.0, 0),
                    b,
                    b,
                ));
            }
        }
        let served: Vec<Shard> = self
            .map
            .shards()
            .filter(|s| s.node == node)
            .cloned()
            .collect();
        for shard in served {
            let live_replica = shard.replicas.iter().find(|r| !self.down.contains(*r));
            let (to, reason) = match live_replica {
                Some(r) => (
                    r.clone(),
                    format!("node {node} is down; {r} holds a replica"),
                ),
                None => {
                    let nodes = self.node_loads(&round, |v| v.now);
                    let Some((coldest, _)) = nodes.coldest_except(node) else {
                        continue;
                    };
                    (
                        coldest.to_string(),
                        format!(
                            "node {node} is down and no replica is live; {coldest} is the least \
                             loaded node and fetches the data on its misses"
                        ),
                    )
                }
            };
            let change = MapChange::Failover {
                shard: shard.id,
                from: node.to_string(),
                to,
            };
            self.apply_recorded(&mut round, change, reason, shard.id, true, &mut out);
        }
        let listed: Vec<Shard> = self
            .map
            .shards()
            .filter(|s| s.replicas.iter().any(|r| r == node))
            .cloned()
            .collect();
        for shard in listed {
            let replicas = shard
                .replicas
                .iter()
                .filter(|r| *r != node)
                .cloned()
                .collect();
            let change = MapChange::Replicas {
                shard: shard.id,
                replicas,
            };
            let reason = format!("node {node} is down: no longer a replica");
            self.apply_recorded(&mut round, change, reason, shard.id, false, &mut out);
        }
        out
    }

    /// Marks `node` live again: shards may be placed on it from the next round.
    pub fn node_up(&mut self, node: &str) {
        self.down.remove(node);
    }

    fn live(&self) -> impl Iterator<Item = &String> {
        self.nodes.iter().filter(|n| !self.down.contains(*n))
    }

    fn cooling(&self, id: ShardId, round: &Round) -> bool {
        round.touched.contains(&id)
            || self
                .touched
                .get(&id)
                .is_some_and(|t| round.window < t + self.config.cooldown_windows)
    }

    /// A round whose views are the measured loads only (for node failures).
    fn plain_round(&self, window: u64) -> Round {
        let views = self
            .map
            .shards()
            .map(|s| {
                let (now, keys) = self.loads.latest_in(s.range);
                let view = View {
                    now,
                    keys,
                    next: now,
                    plan: now,
                    lead: now,
                    peak: now,
                    ..View::default()
                };
                (s.id, view)
            })
            .collect();
        Round {
            window,
            views,
            merge_now: 0.0,
            merge_levels: Vec::new(),
            budget: f64::INFINITY,
            used: 0.0,
            touched: HashSet::new(),
        }
    }

    /// Measures and (predictive) forecasts every shard, and marks the splits due.
    fn assess(
        &self,
        window: u64,
        forecaster: &mut dyn LoadForecaster,
        sustain: Option<usize>,
    ) -> Round {
        let c = &self.config;
        let initial = self.initial_shards;
        let total = self.loads.latest_total();
        let shards: Vec<&Shard> = self.map.shards().collect();
        let mut views = HashMap::with_capacity(shards.len());
        let merge_levels: Vec<f64>;
        match sustain {
            None => {
                let steps = c.horizon + c.shadow_lead;
                let histories: Vec<&[f64]> =
                    shards.iter().map(|s| self.loads.shard(s.id)).collect();
                let raw = forecaster.forecast(&histories, window + 1, steps);
                let forecasts = sanitize(raw, &histories, steps);
                let totals: Vec<f64> = (0..steps)
                    .map(|h| forecasts.iter().map(|f| f[h]).sum())
                    .collect();
                let split_levels: Vec<f64> = totals
                    .iter()
                    .map(|t| c.split_load.level(*t, initial))
                    .collect();
                merge_levels = totals[..c.horizon]
                    .iter()
                    .map(|t| c.merge_load.level(*t, initial))
                    .collect();
                for (shard, f) in shards.iter().zip(forecasts) {
                    let (now, keys) = self.loads.latest_in(shard.range);
                    let margin = self.margin(shard.id);
                    // The first step from which the forecast stays above the level to the end of
                    // what is looked at: a bump forecast to fade is no reason to split.
                    let above = |h: usize| f[h] - margin > split_levels[h];
                    let cross = (0..steps).rev().take_while(|&h| above(h)).last();
                    let plan = f[..c.horizon].iter().copied().fold(0.0, f64::max);
                    let why = cross.map_or_else(String::new, |h| {
                        format!(
                            "forecast {:.1} (± {margin:.1}) crosses the split level {:.1} in {} \
                             window(s) and stays above (now {now:.1})",
                            f[h],
                            split_levels[h],
                            h + 1
                        )
                    });
                    let view = View {
                        now,
                        keys,
                        next: f[0],
                        plan,
                        lead: f.iter().copied().fold(0.0, f64::max),
                        recent: f[..c.horizon].to_vec(),
                        peak: plan,
                        due: cross.is_some_and(|h| h < c.horizon),
                        trending: cross.is_some(),
                        why,
                    };
                    views.insert(shard.id, view);
                }
            }
            Some(sustain) => {
                let totals = self.loads.totals();
                let tail_totals = &totals[totals.len().saturating_sub(sustain)..];
                let complete = tail_totals.len() == sustain;
                merge_levels = if complete {
                    tail_totals
                        .iter()
                        .map(|t| c.merge_load.level(*t, initial))
                        .collect()
                } else {
                    Vec::new()
                };
                for shard in &shards {
                    let (now, keys) = self.loads.latest_in(shard.range);
                    let history = self.loads.shard(shard.id);
                    let tail = &history[history.len().saturating_sub(sustain)..];
                    let complete = complete && tail.len() == sustain;
                    let due = complete
                        && tail
                            .iter()
                            .zip(tail_totals)
                            .all(|(v, t)| *v > c.split_load.level(*t, initial));
                    let held = tail.iter().copied().fold(f64::INFINITY, f64::min);
                    let held = if held.is_finite() { held } else { 0.0 };
                    let why = if due {
                        format!(
                            "above the split level for {sustain} window(s) (at least {held:.1}, now {now:.1})"
                        )
                    } else {
                        String::new()
                    };
                    let view = View {
                        now,
                        keys,
                        next: now,
                        plan: now,
                        lead: now,
                        recent: if complete { tail.to_vec() } else { Vec::new() },
                        peak: held,
                        due,
                        trending: false,
                        why,
                    };
                    views.insert(shard.id, view);
                }
            }
        }
        Round {
            window,
            views,
            merge_now: c.merge_load.level(total, initial),
            merge_levels,
            budget: c.churn_budget * total,
            used: 0.0,
            touched: HashSet::new(),
        }
    }

    fn node_loads(&self, round: &Round, load: impl Fn(&View) -> f64) -> NodeLoads {
        NodeLoads::new(
            self.live(),
            self.map
                .shards()
                .map(|s| (s.node.as_str(), round.views.get(&s.id).map_or(0.0, &load))),
        )
    }

    fn balance(&self, round: &Round) -> Balance {
        Balance {
            shards: imbalance(
                self.map
                    .shards()
                    .map(|s| round.views.get(&s.id).map_or(0.0, |v| v.next)),
            ),
            nodes: self.node_loads(round, |v| v.next).imbalance(),
        }
    }

    /// Splits the shards due, hottest first.
    fn split_hot(&mut self, round: &mut Round, out: &mut Vec<BalanceDecision>) {
        let mut due: Vec<(ShardId, f64)> = round
            .views
            .iter()
            .filter(|(_, v)| v.due)
            .map(|(id, v)| (*id, v.plan))
            .collect();
        due.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        for (id, _) in due {
            if self.map.shards().count() >= self.config.max_shards {
                break;
            }
            if !self.cooling(id, round) {
                self.split_one(id, round, out);
            }
        }
    }

    fn split_one(&mut self, id: ShardId, round: &mut Round, out: &mut Vec<BalanceDecision>) {
        let Some(shard) = self.map.get(id).cloned() else {
            return;
        };
        let keys = self.loads.split_keys(shard.range);
        let Some(mut point) = split_point(&keys, shard.range, self.config.min_width) else {
            return;
        };
        let shadow = self.shadows.remove(&id);
        let mut preferred = None;
        if let Some(plan) = &shadow {
            if let Some((p, side)) = shadow_cut(plan, &shard, &keys, self.config.min_width) {
                let slack = 0.1 * (point.left_load + point.right_load);
                if p.busier() <= point.busier() + slack {
                    point = p;
                    preferred = Some((side, plan.to.clone()));
                }
            }
        }
        let Ok(change) = self.map.split_change(id, point.at) else {
            return;
        };
        let MapChange::Split { left, right, .. } = change else {
            return;
        };
        let parent = round.view(id);
        let before = self.balance(round);
        if self.map.apply(&change).is_err() {
            return;
        }
        let ranges = [
            HashRange {
                lo: shard.range.lo,
                hi: point.at,
            },
            HashRange {
                lo: point.at,
                hi: shard.range.hi,
            },
        ];
        self.loads.split(id, shard.range, point.at, left, right);
        let share = point.left_share();
        let (lnow, lkeys) = self.loads.latest_in(ranges[0]);
        let (rnow, rkeys) = self.loads.latest_in(ranges[1]);
        round.views.remove(&id);
        round.views.insert(left, parent.part(share, lnow, lkeys));
        round
            .views
            .insert(right, parent.part(1.0 - share, rnow, rkeys));
        for half in [left, right] {
            self.touched.insert(half, round.window);
            self.split_born.insert(half, round.window);
            round.touched.insert(half);
        }
        // Count noise grows with the square root of the load, so each half keeps that share of
        // the parent's typical error.
        if let Some(error) = self.errors.remove(&id) {
            self.errors.insert(left, error * share.sqrt());
            self.errors.insert(right, error * (1.0 - share).sqrt());
        }
        let after = self.balance(round);
        let reason = format!(
            "{}; cut at {} ({:.0}% of the key load below{})",
            parent.why,
            point.at,
            100.0 * share,
            if point.isolates_key {
                ", beside a key carrying most of it"
            } else {
                ""
            }
        );
        let version = self.map.version();
        out.push(BalanceDecision {
            window: round.window,
            action: BalanceAction::Change(change),
            version,
            reason,
            shard_load: parent.now,
            forecast_peak: parent.peak,
            load_moved: 0.0,
            keys_moved: 0,
            imbalance_before: before.shards,
            imbalance_after: after.shards,
            node_imbalance_before: before.nodes,
            node_imbalance_after: after.nodes,
        });

        // Placement of one half.
        let half = |side: Side| match side {
            Side::Left => (left, ranges[0]),
            Side::Right => (right, ranges[1]),
        };
        let nodes = self.node_loads(round, |v| v.plan);
        let mut chosen = None;
        if let Some((side, to)) = preferred {
            let (hid, _) = half(side);
            let v = round.view(hid);
            if !self.down.contains(&to)
                && nodes.improves(&shard.node, &to, v.plan)
                && round.fits(v.now)
            {
                chosen = Some((side, to));
            }
        }
        if chosen.is_none() {
            let candidates: Vec<(Side, f64)> = [Side::Left, Side::Right]
                .into_iter()
                .filter(|s| round.fits(round.view(half(*s).0).now))
                .map(|s| (s, round.view(half(s).0).plan))
                .collect();
            chosen = nodes.best_move(&shard.node, &candidates);
        }
        let promoted = match (&shadow, &chosen) {
            (Some(plan), Some((side, to))) => plan.range == half(*side).1 && plan.to == *to,
            _ => false,
        };
        if let (Some(plan), false) = (&shadow, promoted) {
            let b = self.balance(round);
            out.push(self.record(
                round,
                BalanceAction::CancelShadow {
                    shard: id,
                    to: plan.to.clone(),
                },
                "the split moves another range or none: the copy is not needed".into(),
                id,
                (0.0, 0),
                b,
                b,
            ));
        }
        if let Some((side, to)) = chosen {
            let (hid, range) = half(side);
            let target = nodes.load(&to);
            let reason = if promoted {
                format!(
                    "{to} has the least predicted load ({target:.1} against {:.1} on {}); promotes the \
                     shadow copy of {}..{} started in window {}",
                    nodes.load(&shard.node),
                    shard.node,
                    range.lo,
                    range.hi,
                    shadow.as_ref().map_or(0, |s| s.since)
                )
            } else {
                format!(
                    "{to} has the least predicted load ({target:.1} against {:.1} on {})",
                    nodes.load(&shard.node),
                    shard.node
                )
            };
            let change = MapChange::Move {
                shard: hid,
                from: shard.node.clone(),
                to,
            };
            self.apply_recorded(round, change, reason, hid, true, out);
        }
    }

    /// Plans shadow copies for shards trending towards a split, and cancels those whose trend went
    /// away.
    fn plan_shadows(&mut self, round: &Round, out: &mut Vec<BalanceDecision>) {
        let planned: Vec<ShardId> = self.shadows.keys().copied().collect();
        for id in planned {
            let trending = round.views.get(&id).is_some_and(|v| v.trending);
            if trending && self.map.get(id).is_some() {
                continue;
            }
            if let Some(plan) = self.shadows.remove(&id) {
                let b = self.balance(round);
                let why = if self.map.get(id).is_some() {
                    "the forecast no longer crosses the split level"
                } else {
                    "the shard no longer exists"
                };
                out.push(self.record(
                    round,
                    BalanceAction::CancelShadow {
                        shard: id,
                        to: plan.to,
                    },
                    why.into(),
                    id,
                    (0.0, 0),
                    b,
                    b,
                ));
            }
        }
        if self.map.shards().count() >= self.config.max_shards {
            return;
        }
        let mut trending: Vec<(ShardId, f64)> = round
            .views
            .iter()
            .filter(|(id, v)| v.trending && !self.shadows.contains_key(id))
            .map(|(id, v)| (*id, v.lead))
            .collect();
        trending.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let nodes = self.node_loads(round, |v| v.plan);
        for (id, _) in trending {
            let Some(shard) = self.map.get(id).cloned() else {
                continue;
            };
            let keys = self.loads.split_keys(shard.range);
            let Some(point) = split_point(&keys, shard.range, self.config.min_width) else {
                continue;
            };
            let v = round.view(id);
            // At the peak of the trend the shard's node carries `lead` rather than `plan`.
            let mut at_peak = nodes.clone();
            at_peak.add(&shard.node, v.lead - v.plan);
            let share = point.left_share();
            let candidates = [
                (Side::Left, v.lead * share),
                (Side::Right, v.lead * (1.0 - share)),
            ];
            let Some((side, to)) = at_peak.best_move(&shard.node, &candidates) else {
                continue;
            };
            let range = match side {
                Side::Left => HashRange {
                    lo: shard.range.lo,
                    hi: point.at,
                },
                Side::Right => HashRange {
                    lo: point.at,
                    hi: shard.range.hi,
                },
            };
            let reason = format!(
                "{}: copy {}..{} to {to} ahead of the split and move",
                v.why, range.lo, range.hi
            );
            let b = self.balance(round);
            let mut decision = self.record(
                round,
                BalanceAction::Shadow {
                    shard: id,
                    range,
                    from: shard.node.clone(),
                    to: to.clone(),
                },
                reason,
                id,
                (0.0, 0),
                b,
                b,
            );
            decision.forecast_peak = v.lead;
            out.push(decision);
            self.shadows.insert(
                id,
                ShadowPlan {
                    range,
                    from: shard.node,
                    to,
                    since: round.window,
                },
            );
        }
    }

    fn mergeable(&self, id: ShardId, round: &Round) -> bool {
        round.views.contains_key(&id)
            && !self.cooling(id, round)
            && !self.shadows.contains_key(&id)
            && self
                .split_born
                .get(&id)
                .is_none_or(|w| round.window >= w + self.config.merge_delay_windows)
    }

    /// Merges cold neighbours, coldest pair first.
    fn merge_cold(&mut self, round: &mut Round, out: &mut Vec<BalanceDecision>) {
        let shards: Vec<Shard> = self.map.shards().cloned().collect();
        let mut pairs = Vec::new();
        for pair in shards.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            if !self.mergeable(a.id, round) || !self.mergeable(b.id, round) {
                continue;
            }
            let (va, vb) = (round.view(a.id), round.view(b.id));
            let now = va.now + vb.now;
            let n = round.merge_levels.len();
            let cold = now < round.merge_now
                && n > 0
                && va.recent.len() == n
                && vb.recent.len() == n
                && (0..n).all(|j| va.recent[j] + vb.recent[j] < round.merge_levels[j]);
            if cold {
                pairs.push((now, a.id, b.id));
            }
        }
        pairs.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
        let mut count = shards.len();
        let mut used = HashSet::new();
        for (now, a, b) in pairs {
            if count <= self.config.min_shards {
                break;
            }
            if used.contains(&a) || used.contains(&b) {
                continue;
            }
            let (Some(sa), Some(sb)) = (self.map.get(a).cloned(), self.map.get(b).cloned()) else {
                continue;
            };
            let (va, vb) = (round.view(a), round.view(b));
            if sa.node != sb.node {
                // Bring the lighter one to the other's node: the least load changes node.
                let (mover, v, to) = if va.now < vb.now {
                    (a, &va, sb.node.clone())
                } else {
                    (b, &vb, sa.node.clone())
                };
                if self.down.contains(&to) || !round.fits(v.now) {
                    continue;
                }
                let reason = format!("brings shards {a} and {b} onto {to} so they can merge");
                self.apply_recorded(
                    round,
                    MapChange::Move {
                        shard: mover,
                        from: if mover == a {
                            sa.node.clone()
                        } else {
                            sb.node.clone()
                        },
                        to,
                    },
                    reason,
                    mover,
                    true,
                    out,
                );
            }
            let Ok(change) = self.map.merge_change(a) else {
                continue;
            };
            let MapChange::Merge { right, into, .. } = change else {
                continue;
            };
            if right != b {
                continue;
            }
            let before = self.balance(round);
            if self.map.apply(&change).is_err() {
                continue;
            }
            self.loads.merge(a, b, into);
            // Independent errors add in quadrature.
            let (ea, eb) = (self.errors.remove(&a), self.errors.remove(&b));
            if ea.is_some() || eb.is_some() {
                let (ea, eb) = (ea.unwrap_or(0.0), eb.unwrap_or(0.0));
                self.errors.insert(into, (ea * ea + eb * eb).sqrt());
            }
            let merged = va.plus(&vb);
            round.views.remove(&a);
            round.views.remove(&b);
            round.views.insert(into, merged.clone());
            round.touched.insert(into);
            self.touched.insert(into, round.window);
            let after = self.balance(round);
            let reason = format!(
                "combined load {now:.1} now and at most {:.1} over {} checked window(s) stays under \
                 the merge level ({:.1} now)",
                merged.recent.iter().copied().fold(0.0, f64::max),
                merged.recent.len(),
                round.merge_now
            );
            out.push(BalanceDecision {
                window: round.window,
                action: BalanceAction::Change(change),
                version: self.map.version(),
                reason,
                shard_load: now,
                forecast_peak: merged.peak,
                load_moved: 0.0,
                keys_moved: 0,
                imbalance_before: before.shards,
                imbalance_after: after.shards,
                node_imbalance_before: before.nodes,
                node_imbalance_after: after.nodes,
            });
            used.insert(a);
            used.insert(b);
            count -= 1;
        }
    }

    /// Applies a move, failover or replica change of `shard` and records it; a change of node
    /// counts against the budget and starts the shard's cooldown.
    fn apply_recorded(
        &mut self,
        round: &mut Round,
        change: MapChange,
        reason: String,
        shard: ShardId,
        moves: bool,
        out: &mut Vec<BalanceDecision>,
    ) {
        let before = self.balance(round);
        if self.map.apply(&change).is_err() {
            return;
        }
        let v = round.view(shard);
        let moved = if moves { (v.now, v.keys) } else { (0.0, 0) };
        if moves {
            round.used += v.now;
            round.touched.insert(shard);
            self.touched.insert(shard, round.window);
        }
        let after = self.balance(round);
        out.push(self.record(
            round,
            BalanceAction::Change(change),
            reason,
            shard,
            moved,
            before,
            after,
        ));
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        round: &Round,
        action: BalanceAction,
        reason: String,
        shard: ShardId,
        moved: (f64, u64),
        before: Balance,
        after: Balance,
    ) -> BalanceDecision {
        let v = round.view(shard);
        BalanceDecision {
            window: round.window,
            action,
            version: self.map.version(),
            reason,
            shard_load: v.now,
            forecast_peak: v.peak,
            load_moved: moved.0,
            keys_moved: moved.1,
            imbalance_before: before.shards,
            imbalance_after: after.shards,
            node_imbalance_before: before.nodes,
            node_imbalance_after: after.nodes,
        }
    }
}

/// Every history's forecasts, `steps` long: a missing, negative or non-finite value is replaced by
/// the one before it (the last measured load for the first), so a broken forecaster degrades to
/// the naive forecast.
fn sanitize(raw: Vec<Vec<f64>>, histories: &[&[f64]], steps: usize) -> Vec<Vec<f64>> {
    let aligned = raw.len() == histories.len();
    histories
        .iter()
        .enumerate()
        .map(|(i, history)| {
            let row = if aligned { raw.get(i) } else { None };
            let mut previous = history.last().copied().unwrap_or(0.0);
            (0..steps)
                .map(|h| {
                    let v = row
                        .and_then(|r| r.get(h))
                        .copied()
                        .filter(|v| v.is_finite() && *v >= 0.0)
                        .unwrap_or(previous);
                    previous = v;
                    v
                })
                .collect()
        })
        .collect()
}

/// The cut a shadow plan implies for `shard` (its range must share one end with the shard's), with
/// the loads on each side and the side the plan copies.
fn shadow_cut(
    plan: &ShadowPlan,
    shard: &Shard,
    keys: &[(u32, f64)],
    min_width: u64,
) -> Option<(SplitPoint, Side)> {
    let r = shard.range;
    let (at, side) = if plan.range.lo == r.lo && plan.range.hi < r.hi {
        (plan.range.hi, Side::Left)
    } else if plan.range.hi == r.hi && plan.range.lo > r.lo {
        (plan.range.lo, Side::Right)
    } else {
        return None;
    };
    if at < r.lo + min_width || at + min_width > r.hi {
        return None;
    }
    let left: f64 = keys
        .iter()
        .filter(|(p, _)| u64::from(*p) < at)
        .map(|(_, l)| l)
        .sum();
    let total: f64 = keys.iter().map(|(_, l)| l).sum();
    Some((
        SplitPoint {
            at,
            left_load: left,
            right_load: total - left,
            isolates_key: false,
        },
        side,
    ))
}
