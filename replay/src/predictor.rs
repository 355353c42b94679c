//! The next-access predictor: "after X comes Y", learned over a sliding window of epochs and turned into
//! confidence-gated, budgeted prefetch orders.
//!
//! # The model
//!
//! Requests are grouped in epochs of `tick_ms` (epoch = ts / tick). The model used during epoch t is
//! built only from the requests of epochs t-W..t-1 (`W = window_epochs`); a pair of requests belongs to
//! the epoch of its later request. It is four count tables, each a map context -> (occurrences,
//! target -> count), that a dataflow recomputes every epoch as windowed counts followed by a top-k:
//!
//! * **Successor** (context X): `occurrences(X)` = requests for X; `count(X -> Y)` = requests for X
//!   after which the same client requested Y among its next `lookahead` requests, at most `max_gap_ms`
//!   later (Y != X, each Y counted once per request for X).
//! * **Second order** (context (W, X), when `second_order`): the same, for requests for X whose client's
//!   previous request, at most `max_gap_ms` earlier, was for W.
//! * **Co-access** (context X, when `co_access_window > 0`): `occurrences(X)` = requests for X;
//!   `count(X -> Y)` = requests for X by a client A after which another client B != A requested Y
//!   within the next `co_access_window` requests of the same region and `max_gap_ms` ("if A requests
//!   X, B is likely to request Y"). Traces without clients have no co-access pairs.
//! * **Stride** (integer keys only, when `max_stride > 0`; context: the region and, when
//!   `stride_by_size`, the size of the request): `occurrences` = requests with that context;
//!   `count(d)` = such requests for some X after which the same client requested X + d among its next
//!   `lookahead` requests, 0 < |d| <= `max_stride`, within `max_gap_ms`. Unlike the others it
//!   generalises to keys never seen, which is what removes compulsory misses on block traces; keyed by
//!   size it learns that a 64 KiB write at block X is followed by block X + 128 and a 4 KiB one by
//!   X + 8, without being told the block size.
//!
//! For each context the `top_k` targets by count (ties: smaller target first) with count >= `min_count`
//! are candidates, with `probability = min(1, count / occurrences)` and
//! `confidence = probability * occurrences / (occurrences + prior)` (the probability shrunk by the
//! support of the context, as in the dataflow's `transitions` operator).
//!
//! # Orders
//!
//! On each request for X by client c in region r the predictor looks up Successor[X],
//! SecondOrder[(previous key of c, X)], CoAccess[X] and Stride[(r, size)] (X + d for its top offsets)
//! in the current tables, keeps each candidate's highest confidence over the tables, drops candidates below
//! `min_confidence` and those region r already holds or has in flight, and orders the rest by
//! `priority = confidence * value` (value = 1 in object caches, 1 / size in byte caches: expected hits
//! per byte), at most `max_orders` per request and within r's budget for the epoch (paced: a fraction
//! f into the epoch, at most f of the budget is spent). Orders go to r, the
//! region of the client that is expected to ask. Per-client state is the client's last `lookahead`
//! requests; per-region state the last `co_access_window` requests and the budget spent. Ties are
//! broken by key, so the same requests give the same orders.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use crate::window_tables::{Table, WindowTables};
use crate::{
    Budget, CacheUnit, CacheView, KeyKind, PredictorConfig, PrefetchOrder, Prefetcher, ReplayError,
    Request,
};

/// A recent request of a client or region.
#[derive(Clone, Copy, Debug)]
struct Recent {
    key: u32,
    ts_ms: u64,
    size: u32,
    client: u32,
    /// The client's request before this one, when within the gap (for the second-order context).
    previous: Option<u32>,
}

/// Prefetch budget bookkeeping of one region.
#[derive(Clone, Copy, Debug, Default)]
struct Spending {
    /// Units (objects or bytes) requested in the current epoch.
    demand: u64,
    /// Units requested in the epoch before the current one.
    last_demand: u64,
    /// Units ordered in the current epoch.
    spent: u64,
}

/// Learns which keys follow which and orders prefetches of the likely next ones; see the module docs
/// for the exact tables.
#[derive(Clone, Debug)]
pub struct NextAccessPredictor {
    config: PredictorConfig,
    integer_keys: bool,
    unit: CacheUnit,
    tables: WindowTables,
    epoch: Option<u64>,
    clients: FxHashMap<u32, VecDeque<Recent>>,
    regions: FxHashMap<u16, VecDeque<Recent>>,
    spending: FxHashMap<u16, Spending>,
    /// The last size seen per key, for the size of an order.
    sizes: FxHashMap<u32, u32>,
    candidates: Vec<(u32, f64)>,
}

impl NextAccessPredictor {
    /// A predictor with no history. `keys` says whether key ids are integers (which enables the stride
    /// table); `unit` is what the caches it feeds count, which sets the value of an object and the unit
    /// of the budget.
    pub fn new(
        config: PredictorConfig,
        keys: KeyKind,
        unit: CacheUnit,
    ) -> Result<Self, ReplayError> {
        config.validate()?;
        Ok(NextAccessPredictor {
            tables: WindowTables::new(config.window_epochs, config.top_k),
            integer_keys: keys == KeyKind::Integer,
            unit,
            config,
            epoch: None,
            clients: FxHashMap::default(),
            regions: FxHashMap::default(),
            spending: FxHashMap::default(),
            sizes: FxHashMap::default(),
            candidates: Vec::new(),
        })
    }

    /// The settings in use.
    pub fn config(&self) -> &PredictorConfig {
        &self.config
    }

    /// The candidates for what follows `request`, from the tables of its epoch (the model moves to that
    /// epoch first, as for a request): `(key, confidence)` sorted by key, one per key, before the gate,
    /// the budget and the cache check. Unlike [`Prefetcher::on_request`] it learns nothing from
    /// `request`.
    pub fn candidates(&mut self, request: &Request) -> Vec<(u32, f64)> {
        self.enter_epoch(request.ts_ms / self.config.tick_ms);
        let previous = self.previous_of(request);
        self.collect_candidates(request, previous);
        self.candidates.clone()
    }

    /// Moves the model to `epoch`, rolls the budgets over and forgets clients silent for longer than
    /// the gap (their recent requests can pair with nothing any more).
    fn enter_epoch(&mut self, epoch: u64) {
        if self.epoch.is_some_and(|e| epoch <= e) {
            return;
        }
        let consecutive = self.epoch.is_some_and(|e| e + 1 == epoch);
        for s in self.spending.values_mut() {
            s.last_demand = if consecutive { s.demand } else { 0 };
            s.demand = 0;
            s.spent = 0;
        }
        let start_ms = epoch.saturating_mul(self.config.tick_ms);
        let gap = self.config.max_gap_ms;
        self.clients.retain(|_, recent| {
            recent
                .back()
                .is_some_and(|r| r.ts_ms.saturating_add(gap) >= start_ms)
        });
        self.tables.advance(epoch);
        self.epoch = Some(epoch);
    }

    /// The client's previous key when it is recent enough to be a context.
    fn previous_of(&self, request: &Request) -> Option<u32> {
        self.clients
            .get(&request.client)
            .and_then(|recent| recent.back())
            .filter(|r| request.ts_ms.saturating_sub(r.ts_ms) <= self.config.max_gap_ms)
            .map(|r| r.key)
    }

    /// Stages what `request` teaches: its occurrences and the pairs it closes.
    fn learn(&mut self, request: &Request, previous: Option<u32>) {
        let config = &self.config;
        let y = request.key;
        let tables = &mut self.tables;
        let client = self.clients.entry(request.client).or_default();
        for (j, x) in client.iter().enumerate() {
            if request.ts_ms.saturating_sub(x.ts_ms) > config.max_gap_ms || x.key == y {
                continue;
            }
            // Count Y once per request for X: skip it if it already followed X.
            if client.iter().skip(j + 1).any(|later| later.key == y) {
                continue;
            }
            tables.pair(Table::Successor, u64::from(x.key), y);
            if let Some(w) = x.previous.filter(|_| config.second_order) {
                tables.pair(Table::SecondOrder, pair_context(w, x.key), y);
            }
            if self.integer_keys && config.max_stride > 0 {
                let d = i64::from(y) - i64::from(x.key);
                if d.unsigned_abs() <= u64::from(config.max_stride) {
                    // Offsets are stored as the bits of an i32; the few beyond its range are skipped.
                    if let Ok(d) = i32::try_from(d) {
                        tables.pair(
                            Table::Stride,
                            stride_context(config.stride_by_size, request.region, x.size),
                            d as u32,
                        );
                    }
                }
            }
        }
        tables.occurrence(Table::Successor, u64::from(y));
        if let Some(w) = previous.filter(|_| config.second_order) {
            tables.occurrence(Table::SecondOrder, pair_context(w, y));
        }
        if self.integer_keys && config.max_stride > 0 {
            tables.occurrence(
                Table::Stride,
                stride_context(config.stride_by_size, request.region, request.size),
            );
        }
        client.push_back(Recent {
            key: y,
            ts_ms: request.ts_ms,
            size: request.size,
            client: request.client,
            previous,
        });
        if client.len() > config.lookahead {
            client.pop_front();
        }

        if config.co_access_window > 0 {
            let region = self.regions.entry(request.region).or_default();
            for (j, x) in region.iter().enumerate() {
                if x.client == request.client
                    || x.key == y
                    || request.ts_ms.saturating_sub(x.ts_ms) > config.max_gap_ms
                {
                    continue;
                }
                let counted = region
                    .iter()
                    .skip(j + 1)
                    .any(|later| later.key == y && later.client != x.client);
                if !counted {
                    tables.pair(Table::CoAccess, u64::from(x.key), y);
                }
            }
            tables.occurrence(Table::CoAccess, u64::from(y));
            region.push_back(Recent {
                key: y,
                ts_ms: request.ts_ms,
                size: request.size,
                client: request.client,
                previous,
            });
            if region.len() > config.co_access_window {
                region.pop_front();
            }
        }
    }

    /// Fills `self.candidates` with `(key, confidence)` for what may follow `request`.
    fn collect_candidates(&mut self, request: &Request, previous: Option<u32>) {
        let config = &self.config;
        let candidates = &mut self.candidates;
        candidates.clear();
        let x = request.key;
        let mut add = |ctx_table: Table, ctx: u64, to_key: &dyn Fn(u32) -> Option<u32>| {
            if let Some(ranked) = self.tables.lookup(ctx_table, ctx) {
                let n = f64::from(ranked.occurrences.max(1));
                let support = n / (n + config.prior);
                for &(target, count) in ranked.top {
                    if count < config.min_count {
                        break;
                    }
                    let Some(key) = to_key(target) else {
                        continue;
                    };
                    let probability = (f64::from(count) / n).min(1.0);
                    candidates.push((key, probability * support));
                }
            }
        };
        add(Table::Successor, u64::from(x), &Some);
        if let Some(w) = previous.filter(|_| config.second_order) {
            add(Table::SecondOrder, pair_context(w, x), &Some);
        }
        if config.co_access_window > 0 {
            add(Table::CoAccess, u64::from(x), &Some);
        }
        if self.integer_keys && config.max_stride > 0 {
            let offset = |d: u32| u32::try_from(i64::from(x) + i64::from(d as i32)).ok();
            add(
                Table::Stride,
                stride_context(config.stride_by_size, request.region, request.size),
                &offset,
            );
        }
        candidates.retain(|&(key, _)| key != x);
        // One entry per key with its best confidence; sorting by key first makes this deterministic.
        candidates.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
        candidates.dedup_by_key(|c| c.0);
    }

    /// The room `size` bytes take in the caches this predictor feeds.
    fn units(&self, size: u32) -> u64 {
        match self.unit {
            CacheUnit::Objects => 1,
            CacheUnit::Bytes => u64::from(size.max(1)),
        }
    }
}

impl Prefetcher for NextAccessPredictor {
    fn on_request(
        &mut self,
        request: &Request,
        cache: &dyn CacheView,
        orders: &mut Vec<PrefetchOrder>,
    ) {
        self.enter_epoch(request.ts_ms / self.config.tick_ms);
        let previous = self.previous_of(request);
        self.sizes.insert(request.key, request.size);
        let units = self.units(request.size);
        self.spending.entry(request.region).or_default().demand += units;

        self.collect_candidates(request, previous);
        self.learn(request, previous);

        // (priority, key, confidence, size, cost in budget units)
        let mut ranked: Vec<(f64, u32, f64, u32, u64)> = self
            .candidates
            .iter()
            .filter(|&&(key, confidence)| {
                confidence >= self.config.min_confidence && !cache.holds(request.region, key)
            })
            .map(|&(key, confidence)| {
                // Keys never seen (stride guesses) take the size of the request that suggested them.
                let size = self.sizes.get(&key).copied().unwrap_or(request.size);
                let cost = self.units(size);
                let value = match self.unit {
                    CacheUnit::Objects => 1.0,
                    CacheUnit::Bytes => 1.0 / cost as f64,
                };
                (confidence * value, key, confidence, size, cost)
            })
            .collect();
        ranked.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));

        let spending = self.spending.entry(request.region).or_default();
        let per_epoch = match self.config.budget {
            Budget::Unlimited => None,
            Budget::PerEpoch(units) => Some(units as f64),
            Budget::DemandShare(share) => Some(spending.last_demand as f64 * share),
        };
        // The budget is paced over the epoch: by a fraction f of the epoch, f of it may be spent, so
        // the first requests of an epoch cannot exhaust what the later ones need.
        let tick = self.config.tick_ms;
        let elapsed = (request.ts_ms % tick + 1) as f64 / tick as f64;
        let allowance = per_epoch.map_or(u64::MAX, |b| (b * elapsed).ceil() as u64);
        let mut placed = 0;
        for (_, key, confidence, size, cost) in ranked {
            if placed == self.config.max_orders {
                break;
            }
            if spending.spent.saturating_add(cost) > allowance {
                continue;
            }
            spending.spent += cost;
            placed += 1;
            orders.push(PrefetchOrder {
                key,
                region: request.region,
                size,
                confidence,
            });
        }
    }
}

/// The context of the stride table for a request of `size` bytes in `region`.
fn stride_context(by_size: bool, region: u16, size: u32) -> u64 {
    if by_size {
        (u64::from(region) << 32) | u64::from(size)
    } else {
        u64::from(region)
    }
}

/// The context id of the key pair (W, X).
fn pair_context(w: u32, x: u32) -> u64 {
    (u64::from(w) << 32) | u64::from(x)
}
