//! LRU fed by a prefetcher: how much a predictor's orders raise the hit ratio, and at what cost.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::lru::{region_lists, simulate_lru};
use crate::lru_list::{Entry, LruList};
use crate::stats::ratio;
use crate::{CacheStats, Capacities, ReplayError, Request};

/// A request to bring one object into one region's cache before anyone asks for it there.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrefetchOrder {
    /// The object.
    pub key: u32,
    /// The region whose cache should hold it.
    pub region: u16,
    /// Its size in bytes.
    pub size: u32,
    /// How sure the prefetcher is that it will be requested there soon, in [0, 1].
    pub confidence: f64,
}

/// What a prefetcher may ask of the caches: whether an object is there or on its way, so it does not
/// spend its budget on objects that need no transfer (as a datastore's prefetch executor would check).
pub trait CacheView {
    /// Whether `region`'s cache holds `key` or a prefetch of it is in flight.
    fn holds(&self, region: u16, key: u32) -> bool;
}

/// Something that watches the request stream and orders prefetches.
pub trait Prefetcher {
    /// Told of `request` after it has been served; appends its prefetch orders to `orders`, most
    /// important first (the simulator executes them in that order).
    fn on_request(
        &mut self,
        request: &Request,
        cache: &dyn CacheView,
        orders: &mut Vec<PrefetchOrder>,
    );
}

/// A prefetcher that never orders anything: with it the simulation is exactly LRU.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoPrefetch;

impl Prefetcher for NoPrefetch {
    fn on_request(&mut self, _: &Request, _: &dyn CacheView, _: &mut Vec<PrefetchOrder>) {}
}

/// Where a prefetched object enters the LRU list.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrefetchEntry {
    /// The most-recently-used end, like a demand fetch.
    Mru,
    /// This share of the capacity below the MRU end (0 = MRU, 1 = the LRU end): an unused prefetch
    /// then leaves before the objects above it, so a wrong guess costs less.
    Depth(f64),
}

/// How prefetches are executed.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrefetchOptions {
    /// Event time from an order to the object being in the cache.
    pub latency_ms: u64,
    /// Where prefetched objects enter the list.
    pub entry: PrefetchEntry,
}

impl Default for PrefetchOptions {
    /// Orders land before the next request (latency 0) at the MRU end, the better entry point on the
    /// reference traces (see the crate's measurements).
    fn default() -> Self {
        PrefetchOptions {
            latency_ms: 0,
            entry: PrefetchEntry::Mru,
        }
    }
}

/// What happened to the orders of one region (or of all of them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefetchCounts {
    /// Orders that moved an object: it was neither cached nor already on its way.
    pub issued: u64,
    /// Prefetched objects requested while still cached (each counts once, at its first request).
    pub used: u64,
    /// Prefetches still in flight when their object was requested: the request missed and the
    /// prefetch was cancelled.
    pub late: u64,
    /// Prefetched objects evicted before anyone requested them.
    pub wasted: u64,
    /// Prefetched objects neither used nor evicted when the trace ended (cached or in flight).
    pub unused_at_end: u64,
    /// Bytes of the issued orders.
    pub bytes: u64,
}

impl PrefetchCounts {
    /// Used over issued.
    pub fn accuracy(&self) -> f64 {
        ratio(self.used, self.issued)
    }

    /// Used over used-or-late: how many correct guesses arrived in time.
    pub fn timeliness(&self) -> f64 {
        ratio(self.used, self.used + self.late)
    }
}

/// The outcome of [`simulate_with_prefetch`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PrefetchStats {
    /// Hits and misses with prefetching.
    pub cache: CacheStats,
    /// Hits and misses of plain LRU on the same requests and capacities.
    pub baseline: CacheStats,
    /// Prefetch counts of all regions.
    pub total: PrefetchCounts,
    /// Prefetch counts by region id.
    pub regions: Vec<PrefetchCounts>,
}

impl PrefetchStats {
    /// Prefetches used over prefetches issued.
    pub fn accuracy(&self) -> f64 {
        self.total.accuracy()
    }

    /// Baseline misses removed, over baseline misses (negative when prefetching evicted more useful
    /// objects than it brought).
    pub fn coverage(&self) -> f64 {
        let base = self.baseline.misses() as f64;
        if base == 0.0 {
            0.0
        } else {
            (base - self.cache.misses() as f64) / base
        }
    }

    /// Used prefetches over used-or-late prefetches.
    pub fn timeliness(&self) -> f64 {
        self.total.timeliness()
    }

    /// Hit ratio with prefetching.
    pub fn hit_ratio(&self) -> f64 {
        self.cache.hit_ratio()
    }
}

/// Replays `requests` through one LRU cache per region while `prefetcher` orders prefetches.
///
/// Each request is served first (a hit moves the object to the MRU end; a miss fetches it there), then
/// the prefetcher is told of it and its orders are executed in order: an order for an object its
/// region already holds, or has in flight, costs nothing and is not issued; an order for an object
/// larger than the cache is dropped; any other order is issued and its object lands `latency_ms` of
/// event time later, before any request at or after that time, at the entry point of `options`. A
/// request for an object whose prefetch is still in flight misses and makes the prefetch late. A
/// prefetched object is "used" at its first request and "wasted" if evicted before it. Requests must
/// be in event-time order.
pub fn simulate_with_prefetch(
    requests: &[Request],
    capacities: &Capacities,
    prefetcher: &mut dyn Prefetcher,
    options: PrefetchOptions,
) -> Result<PrefetchStats, ReplayError> {
    let depth = match options.entry {
        PrefetchEntry::Mru => None,
        PrefetchEntry::Depth(d) if (0.0..=1.0).contains(&d) => Some(d),
        PrefetchEntry::Depth(d) => {
            return Err(ReplayError::InvalidConfig {
                field: "entry",
                reason: format!("depth must be within [0, 1], got {d}"),
            })
        }
    };
    for (index, pair) in requests.windows(2).enumerate() {
        if pair[1].ts_ms < pair[0].ts_ms {
            return Err(ReplayError::OutOfOrder {
                index: index + 1,
                ts_ms: pair[1].ts_ms,
                previous_ms: pair[0].ts_ms,
            });
        }
    }
    let baseline = simulate_lru(requests, capacities)?;
    // The demand part of the list sits above the entry point; `Depth(d)` puts it `d · capacity` down.
    let (lists, caps) = region_lists(requests, capacities, |units| {
        depth.map(|d| (units as f64 * d).floor() as u64)
    })?;
    let entry = if depth.is_some() {
        Entry::Below
    } else {
        Entry::Mru
    };
    let regions = lists.len();
    let mut state = State {
        lists,
        in_flight: FxHashMap::default(),
        queue: VecDeque::new(),
        next_order: 0,
        counts: vec![PrefetchCounts::default(); regions],
    };
    let mut cache = CacheStats::new(regions);
    let mut orders = Vec::new();
    for request in requests {
        state.land(request.ts_ms, entry, &caps);
        let region = usize::from(request.region);
        let hit = match state.lists[region].hit(request.key) {
            Some(was_prefetched) => {
                if was_prefetched {
                    state.counts[region].used += 1;
                }
                true
            }
            None => {
                if state
                    .in_flight
                    .remove(&(request.region, request.key))
                    .is_some()
                {
                    state.counts[region].late += 1;
                }
                let units = caps[region].units_of(request.size);
                let counts = &mut state.counts[region];
                state.lists[region].insert(request.key, units, Entry::Mru, false, |_, p| {
                    counts.wasted += u64::from(p);
                });
                false
            }
        };
        cache.record(request, hit);

        orders.clear();
        prefetcher.on_request(request, &state, &mut orders);
        for order in &orders {
            let region = usize::from(order.region);
            let capacity = *caps.get(region).ok_or(ReplayError::NoCapacity {
                region: order.region,
            })?;
            if state.holds(order.region, order.key)
                || capacity.units_of(order.size) > capacity.units()
            {
                continue;
            }
            let counts = &mut state.counts[region];
            counts.issued += 1;
            counts.bytes += u64::from(order.size);
            let id = state.next_order;
            state.next_order += 1;
            state.in_flight.insert((order.region, order.key), id);
            state.queue.push_back(InFlight {
                lands_ms: request.ts_ms.saturating_add(options.latency_ms),
                id,
                key: order.key,
                region: order.region,
                size: order.size,
            });
        }
    }
    for (region, counts) in state.counts.iter_mut().enumerate() {
        counts.unused_at_end += state.lists[region].prefetched_unused();
    }
    for flight in &state.queue {
        if state.in_flight.get(&(flight.region, flight.key)) == Some(&flight.id) {
            state.counts[usize::from(flight.region)].unused_at_end += 1;
        }
    }
    let mut total = PrefetchCounts::default();
    for c in &state.counts {
        total.issued += c.issued;
        total.used += c.used;
        total.late += c.late;
        total.wasted += c.wasted;
        total.unused_at_end += c.unused_at_end;
        total.bytes += c.bytes;
    }
    Ok(PrefetchStats {
        cache,
        baseline,
        total,
        regions: state.counts,
    })
}

/// An issued prefetch on its way.
struct InFlight {
    lands_ms: u64,
    /// Tells this order from a later one for the same object after a cancellation.
    id: u64,
    key: u32,
    region: u16,
    size: u32,
}

/// The caches and the prefetches in flight.
struct State {
    lists: Vec<LruList>,
    /// `(region, key)` of every live order, with its id.
    in_flight: FxHashMap<(u16, u32), u64>,
    /// Issued orders by landing time (one latency for all, so issue order is landing order).
    queue: VecDeque<InFlight>,
    next_order: u64,
    counts: Vec<PrefetchCounts>,
}

impl State {
    /// Lands every live order due at or before `now_ms`.
    fn land(&mut self, now_ms: u64, entry: Entry, caps: &[crate::Capacity]) {
        while self.queue.front().is_some_and(|f| f.lands_ms <= now_ms) {
            let Some(flight) = self.queue.pop_front() else {
                break;
            };
            let slot = (flight.region, flight.key);
            if self.in_flight.get(&slot) != Some(&flight.id) {
                continue; // cancelled by a demand miss
            }
            self.in_flight.remove(&slot);
            let region = usize::from(flight.region);
            let units = caps[region].units_of(flight.size);
            let counts = &mut self.counts[region];
            self.lists[region].insert(flight.key, units, entry, true, |_, p| {
                counts.wasted += u64::from(p);
            });
        }
    }
}

impl CacheView for State {
    fn holds(&self, region: u16, key: u32) -> bool {
        self.lists
            .get(usize::from(region))
            .is_some_and(|l| l.contains(key))
            || self.in_flight.contains_key(&(region, key))
    }
}
