//! A seeded synthetic workload with the structure placement depends on: popular keys, customers that
//! live in a region and sometimes move, sessions that walk related keys, and a daily load curve.

use std::collections::BTreeMap;
use std::f64::consts::TAU;

use rand::distr::weighted::WeightedIndex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp1, Geometric, LogNormal, Zipf};
use serde::{Deserialize, Serialize};

use crate::{Batch, Event, Source, SourceError};

const HOUR_MS: u64 = 3_600_000;
const DAY_MS: f64 = 86_400_000.0;

/// How many "next" keys each key has; a session that follows picks among them with these weights.
const SUCCESSOR_WEIGHTS: [f64; 3] = [0.6, 0.25, 0.15];

/// The load never drops below this share of the mean rate, so a full-amplitude trough still moves on.
const MIN_LOAD_FACTOR: f64 = 0.02;

/// Smallest object size; sizes are log-distributed from here up to 16 MiB (`256 * 65536`).
const MIN_OBJECT_BYTES: f64 = 256.0;
const OBJECT_SIZE_SPAN: f64 = 65_536.0;

/// Salts that keep the hashes for different purposes independent.
const SALT_SUCCESSOR: u64 = 1;
const SALT_SIZE: u64 = 2;
const SALT_HOME: u64 = 3;
const SALT_DRIFT: u64 = 4;
const SALT_ACTIVITY: u64 = 5;
const SALT_OWN_KEY: u64 = 6;
const SALT_WORKER: u64 = 7;

/// Settings of the synthetic workload. Every field has a default, so a config file names only what it
/// changes; an unknown field is an error rather than a silently ignored typo.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeneratorConfig {
    /// Seed of every random choice: the same seed and worker count give the same events.
    pub seed: u64,
    /// Number of customers (clients `c00000`, `c00001`, ...).
    pub customers: u32,
    /// Number of keys (`k000000` is the most popular).
    pub keys: u32,
    /// Region names; each customer's home is one of them.
    pub regions: Vec<String>,
    /// Exponent of the Zipf law of key popularity (1.0 is classic web-like skew).
    pub zipf_exponent: f64,
    /// Mean events per second of event time, over all workers.
    pub events_per_second: f64,
    /// Event time of the start, milliseconds since the Unix epoch.
    pub start_ms: u64,
    /// Total events over all workers, then the generator is finished; `None` runs forever.
    pub limit: Option<u64>,
    /// Probability per customer per hour of event time that its dominant region starts moving to
    /// another region (so also the expected share of customers that move each hour).
    pub drift_per_hour: f64,
    /// Minutes of event time a move takes: traffic shifts linearly from the old region to the new.
    pub drift_ramp_minutes: f64,
    /// Share of a customer's traffic that comes from its dominant region; the rest is spread evenly.
    pub home_affinity: f64,
    /// Mean events per session (geometric).
    pub session_length: f64,
    /// Probability that the next access in a session is one of the current key's "next" keys rather
    /// than a jump to a popular key.
    pub follow_probability: f64,
    /// Share of jumps that go to the customer's own favourite keys rather than the globally popular
    /// ones, which ties keys to the customers (and so the regions) that use them.
    pub own_key_share: f64,
    /// Share of accesses that are writes.
    pub write_share: f64,
    /// Relative amplitude of the daily load curve, `0..=1`: the rate is
    /// `events_per_second * (1 + amplitude * sin(2π t / 24 h))` with `t` the event time of day (UTC).
    pub diurnal_amplitude: f64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            seed: 42,
            customers: 200,
            keys: 10_000,
            regions: vec!["us-east".into(), "eu-west".into(), "ap-south".into()],
            zipf_exponent: 1.0,
            events_per_second: 2000.0,
            start_ms: 1_700_000_000_000,
            limit: None,
            drift_per_hour: 0.05,
            drift_ramp_minutes: 60.0,
            home_affinity: 0.85,
            session_length: 20.0,
            follow_probability: 0.7,
            own_key_share: 0.3,
            write_share: 0.05,
            diurnal_amplitude: 0.5,
        }
    }
}

impl GeneratorConfig {
    /// Checks that the settings describe a workload; the error names the first bad setting.
    pub fn validate(&self) -> Result<(), SourceError> {
        let share = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(invalid(format!("{name} must be within 0..=1, got {v}")))
            }
        };
        if self.customers == 0 {
            return Err(invalid("customers must be at least 1".into()));
        }
        if self.keys == 0 {
            return Err(invalid("keys must be at least 1".into()));
        }
        if self.regions.is_empty() || self.regions.iter().any(String::is_empty) {
            return Err(invalid("regions must be a non-empty list of names".into()));
        }
        if self.regions.len() > usize::from(u16::MAX) {
            return Err(invalid("too many regions".into()));
        }
        if !(self.zipf_exponent.is_finite() && self.zipf_exponent >= 0.0) {
            return Err(invalid(format!(
                "zipf_exponent must be a non-negative number, got {}",
                self.zipf_exponent
            )));
        }
        if !(self.events_per_second.is_finite() && self.events_per_second > 0.0) {
            return Err(invalid(format!(
                "events_per_second must be positive, got {}",
                self.events_per_second
            )));
        }
        if !(self.session_length.is_finite() && self.session_length >= 1.0) {
            return Err(invalid(format!(
                "session_length must be at least 1, got {}",
                self.session_length
            )));
        }
        if !(self.drift_ramp_minutes.is_finite() && self.drift_ramp_minutes >= 0.0) {
            return Err(invalid(format!(
                "drift_ramp_minutes must be non-negative, got {}",
                self.drift_ramp_minutes
            )));
        }
        share("drift_per_hour", self.drift_per_hour)?;
        share("home_affinity", self.home_affinity)?;
        share("follow_probability", self.follow_probability)?;
        share("own_key_share", self.own_key_share)?;
        share("write_share", self.write_share)?;
        share("diurnal_amplitude", self.diurnal_amplitude)
    }
}

fn invalid(reason: String) -> SourceError {
    SourceError::Invalid(format!("generator: {reason}"))
}

/// Mixes the bits of `x` (SplitMix64's finalizer): a fixed function, so derived choices do not depend
/// on the Rust version or platform.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A hash of the seed and some values, for choices that must not depend on how many random draws came
/// before them (so they are the same for any worker count).
fn hash(seed: u64, parts: &[u64]) -> u64 {
    parts.iter().fold(mix(seed), |h, &p| mix(h ^ p))
}

/// A hash mapped to `[0, 1)`.
fn unit(seed: u64, parts: &[u64]) -> f64 {
    (hash(seed, parts) >> 11) as f64 / (1u64 << 53) as f64
}

/// Where a customer's traffic comes from: a dominant region, possibly in the middle of moving from one
/// region to another.
#[derive(Clone, Debug)]
struct Placement {
    from: usize,
    to: usize,
    ramp_start_ms: u64,
    ramp_end_ms: u64,
    /// Hours since the start whose move decision has been taken.
    hours_decided: u64,
}

impl Placement {
    /// The share of traffic that has moved to `to` at `ts`.
    fn moved(&self, ts: u64) -> f64 {
        if ts >= self.ramp_end_ms {
            1.0
        } else if ts <= self.ramp_start_ms {
            0.0
        } else {
            (ts - self.ramp_start_ms) as f64 / (self.ramp_end_ms - self.ramp_start_ms) as f64
        }
    }
}

/// One customer of this worker and its current session.
#[derive(Clone, Debug)]
struct Customer {
    id: u32,
    name: String,
    home: usize,
    placement: Placement,
    session_left: u64,
    last_key: u32,
}

/// The synthetic workload of one worker: the customers whose id modulo `workers` is its index.
pub struct Generator {
    config: GeneratorConfig,
    rng: StdRng,
    customers: Vec<Customer>,
    pick_customer: WeightedIndex<f64>,
    popular_key: Zipf<f64>,
    session_length: Geometric,
    /// This worker's mean rate in events per millisecond of event time.
    rate_per_ms: f64,
    /// Event time since `start_ms`, kept fractional so short gaps add up.
    elapsed_ms: f64,
    last_ts: Option<u64>,
    produced: u64,
    /// This worker's share of the limit.
    limit: Option<u64>,
}

impl Generator {
    /// The generator of worker `worker_index` of `workers`. Fails if the configuration is invalid or
    /// leaves this worker without customers (more workers than customers).
    pub fn new(
        config: GeneratorConfig,
        worker_index: usize,
        workers: usize,
    ) -> Result<Self, SourceError> {
        config.validate()?;
        if workers == 0 || worker_index >= workers {
            return Err(invalid(format!(
                "worker index {worker_index} is not below the worker count {workers}"
            )));
        }
        let seed = config.seed;
        let regions = config.regions.len();
        let customers: Vec<Customer> = (0..config.customers)
            .filter(|id| *id as usize % workers == worker_index)
            .map(|id| {
                let home = (hash(seed, &[SALT_HOME, id.into()]) % regions as u64) as usize;
                Customer {
                    id,
                    name: format!("c{id:05}"),
                    home,
                    placement: Placement {
                        from: home,
                        to: home,
                        ramp_start_ms: config.start_ms,
                        ramp_end_ms: config.start_ms,
                        hours_decided: 0,
                    },
                    session_left: 0,
                    last_key: 0,
                }
            })
            .collect();
        if customers.is_empty() {
            return Err(invalid(format!(
                "worker {worker_index} of {workers} has no customers ({} customers in all)",
                config.customers
            )));
        }
        // Some customers are much busier than others; each one's weight depends on the seed only.
        let activity = LogNormal::new(0.0, 1.0).map_err(|e| invalid(e.to_string()))?;
        let weights: Vec<f64> = customers
            .iter()
            .map(|c| {
                let mut rng = StdRng::seed_from_u64(hash(seed, &[SALT_ACTIVITY, c.id.into()]));
                activity.sample(&mut rng)
            })
            .collect();
        let pick_customer = WeightedIndex::new(&weights).map_err(|e| invalid(e.to_string()))?;
        let popular_key = Zipf::new(f64::from(config.keys), config.zipf_exponent)
            .map_err(|e| invalid(e.to_string()))?;
        let session_length =
            Geometric::new(1.0 / config.session_length).map_err(|e| invalid(e.to_string()))?;
        let share = customers.len() as f64 / f64::from(config.customers);
        let limit = config.limit.map(|total| {
            let (n, i) = (workers as u64, worker_index as u64);
            total / n + u64::from(i < total % n)
        });
        Ok(Generator {
            rng: StdRng::seed_from_u64(hash(
                seed,
                &[SALT_WORKER, worker_index as u64, workers as u64],
            )),
            customers,
            pick_customer,
            popular_key,
            session_length,
            rate_per_ms: config.events_per_second * share / 1000.0,
            elapsed_ms: 0.0,
            last_ts: None,
            produced: 0,
            limit,
            config,
        })
    }

    /// The configuration this generator runs.
    pub fn config(&self) -> &GeneratorConfig {
        &self.config
    }

    /// The next event, ignoring the limit (which only [`Source::poll`] observes, though events taken
    /// here count towards it). Event times never decrease.
    pub fn next_event(&mut self) -> Event {
        let ts = self.advance_clock();
        let index = self.pick_customer.sample(&mut self.rng);
        self.update_placement(index, ts);
        let key = self.next_key(index);
        let region = self.pick_region(index, ts);
        let op = if self.rng.random_bool(self.config.write_share) {
            "write"
        } else {
            "read"
        };
        let customer = &self.customers[index];
        self.produced += 1;
        self.last_ts = Some(ts);
        Event {
            ts,
            key: key_name(key),
            client: customer.name.clone(),
            region: self.config.regions[region].clone(),
            op: op.into(),
            bytes: self.object_size(key),
            attrs: BTreeMap::from([("home".into(), self.config.regions[customer.home].clone())]),
        }
    }

    /// Moves event time on by an exponential gap at the current point of the daily load curve.
    fn advance_clock(&mut self) -> u64 {
        let now = self.config.start_ms as f64 + self.elapsed_ms;
        let load = 1.0 + self.config.diurnal_amplitude * (TAU * (now % DAY_MS) / DAY_MS).sin();
        let rate = self.rate_per_ms * load.max(MIN_LOAD_FACTOR);
        let gap: f64 = Exp1.sample(&mut self.rng);
        self.elapsed_ms += gap / rate;
        self.config
            .start_ms
            .saturating_add(self.elapsed_ms.floor() as u64)
    }

    /// Takes the move decisions of every hour up to `ts` for customer `index`. Each decision depends
    /// only on the seed, the customer and the hour, not on when the customer happens to be drawn.
    fn update_placement(&mut self, index: usize, ts: u64) {
        let seed = self.config.seed;
        let regions = self.config.regions.len();
        let hour_now = (ts - self.config.start_ms) / HOUR_MS;
        let ramp_ms = (self.config.drift_ramp_minutes * 60_000.0) as u64;
        let customer = &mut self.customers[index];
        let placement = &mut customer.placement;
        while placement.hours_decided <= hour_now {
            let hour = placement.hours_decided;
            placement.hours_decided += 1;
            let hour_start = self.config.start_ms + hour * HOUR_MS;
            let parts = [SALT_DRIFT, customer.id.into(), hour];
            // One move at a time, and none with a single region.
            if regions < 2
                || hour_start < placement.ramp_end_ms
                || unit(seed, &parts) >= self.config.drift_per_hour
            {
                continue;
            }
            let current = placement.to;
            let step = 1 + hash(seed, &[parts[0], parts[1], parts[2], 1]) % (regions as u64 - 1);
            placement.from = current;
            placement.to = (current + step as usize) % regions;
            placement.ramp_start_ms = hour_start
                + (unit(seed, &[parts[0], parts[1], parts[2], 2]) * HOUR_MS as f64) as u64;
            placement.ramp_end_ms = placement.ramp_start_ms + ramp_ms;
        }
    }

    /// The region of the next access of customer `index`: its dominant region (blending old and new
    /// during a move) with probability `home_affinity`, otherwise any other region.
    fn pick_region(&mut self, index: usize, ts: u64) -> usize {
        let placement = &self.customers[index].placement;
        let dominant = if self.rng.random_bool(placement.moved(ts)) {
            placement.to
        } else {
            placement.from
        };
        let regions = self.config.regions.len();
        if regions == 1 || self.rng.random_bool(self.config.home_affinity) {
            dominant
        } else {
            (dominant + self.rng.random_range(1..regions)) % regions
        }
    }

    /// The key of the next access of customer `index`, continuing or starting its session.
    fn next_key(&mut self, index: usize) -> u32 {
        let key = if self.customers[index].session_left == 0 {
            self.customers[index].session_left = 1 + self.session_length.sample(&mut self.rng);
            self.jump(index)
        } else if self.rng.random_bool(self.config.follow_probability) {
            let last = self.customers[index].last_key;
            let choice = self.pick_successor();
            self.successors(last)[choice]
        } else {
            self.jump(index)
        };
        let customer = &mut self.customers[index];
        customer.session_left -= 1;
        customer.last_key = key;
        key
    }

    /// A key drawn from the Zipf popularity law: globally popular, or the customer's own favourites.
    fn jump(&mut self, index: usize) -> u32 {
        // Zipf samples are whole numbers in 1..=keys.
        let rank = self.popular_key.sample(&mut self.rng) as u64;
        if self.rng.random_bool(self.config.own_key_share) {
            let id = self.customers[index].id;
            let key = hash(self.config.seed, &[SALT_OWN_KEY, id.into(), rank]);
            (key % u64::from(self.config.keys)) as u32
        } else {
            (rank.clamp(1, self.config.keys.into()) - 1) as u32
        }
    }

    fn pick_successor(&mut self) -> usize {
        let mut u: f64 = self.rng.random();
        for (i, w) in SUCCESSOR_WEIGHTS.iter().enumerate() {
            if u < *w {
                return i;
            }
            u -= w;
        }
        SUCCESSOR_WEIGHTS.len() - 1
    }

    /// The keys that tend to follow `key` in a session ("after X comes Y"), fixed by the seed. They
    /// are drawn from the popularity law too (pages link to popular pages), so that sessions keep the
    /// Zipf skew instead of spreading accesses evenly.
    fn successors(&self, key: u32) -> [u32; SUCCESSOR_WEIGHTS.len()] {
        let keys = u64::from(self.config.keys);
        std::array::from_fn(|i| {
            let u = unit(self.config.seed, &[SALT_SUCCESSOR, key.into(), i as u64]);
            let next = zipf_rank(u, keys, self.config.zipf_exponent) - 1;
            // A key is not its own successor (unless it is the only key).
            let next = if next == u64::from(key) {
                (next + 1) % keys
            } else {
                next
            };
            next as u32
        })
    }

    /// The fixed size of `key`: log-distributed between 256 B and 16 MiB with a median near 4 KiB.
    fn object_size(&self, key: u32) -> u64 {
        let u = unit(self.config.seed, &[SALT_SIZE, key.into()]);
        (MIN_OBJECT_BYTES * OBJECT_SIZE_SPAN.powf(u * u)).round() as u64
    }
}

/// The rank in `1..=n` at quantile `u` of a continuous approximation of the Zipf law with exponent
/// `s` (density `x^-s` on `[1, n + 1)`): a deterministic draw where a random generator is not wanted.
fn zipf_rank(u: f64, n: u64, s: f64) -> u64 {
    let top = (n + 1) as f64;
    let x = if (s - 1.0).abs() < 1e-9 {
        top.powf(u)
    } else {
        let a = 1.0 - s;
        ((top.powf(a) - 1.0) * u + 1.0).powf(1.0 / a)
    };
    (x.floor() as u64).clamp(1, n)
}

/// The name of key number `key`.
fn key_name(key: u32) -> String {
    format!("k{key:06}")
}

impl Source for Generator {
    fn poll(&mut self, max: usize) -> Result<Batch, SourceError> {
        let room = match self.limit {
            Some(limit) => limit.saturating_sub(self.produced),
            None => u64::MAX,
        };
        let count = (max as u64).min(room) as usize;
        let records = (0..count).map(|_| Ok(self.next_event())).collect();
        Ok(Batch {
            records,
            progress_ms: self.last_ts,
            finished: self.limit.is_some_and(|limit| self.produced >= limit),
            idle: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    use super::*;

    fn generate(config: &GeneratorConfig, n: usize) -> Vec<Event> {
        let mut g = Generator::new(config.clone(), 0, 1).unwrap();
        (0..n).map(|_| g.next_event()).collect()
    }

    fn key_id(name: &str) -> u32 {
        name[1..].parse().unwrap()
    }

    #[test]
    fn same_seed_same_events() {
        let config = GeneratorConfig::default();
        let a = generate(&config, 5000);
        assert_eq!(a, generate(&config, 5000));
        let other = GeneratorConfig {
            seed: 7,
            ..config.clone()
        };
        assert_ne!(a, generate(&other, 5000));
        assert!(a.windows(2).all(|w| w[0].ts <= w[1].ts), "out of order");
        assert!(a.iter().all(|e| e.attrs.contains_key("home")));
        assert!(a.iter().all(|e| config.regions.contains(&e.region)));
        assert!(a
            .iter()
            .all(|e| e.client.starts_with('c') && e.key.starts_with('k')));
    }

    #[test]
    fn sizes_are_fixed_per_key_and_ops_mostly_reads() {
        let events = generate(&GeneratorConfig::default(), 20_000);
        let mut sizes = HashMap::new();
        for e in &events {
            assert_eq!(*sizes.entry(e.key.clone()).or_insert(e.bytes), e.bytes);
            assert!((256..=16 << 20).contains(&e.bytes));
        }
        let writes = events.iter().filter(|e| e.op == "write").count() as f64;
        let share = writes / events.len() as f64;
        assert!((0.03..0.07).contains(&share), "write share {share}");
    }

    #[test]
    fn popular_keys_dominate() {
        let config = GeneratorConfig::default();
        let events = generate(&config, 100_000);
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for e in &events {
            *counts.entry(&e.key).or_default() += 1;
        }
        let mut sorted: Vec<usize> = counts.into_values().collect();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        let top = (config.keys / 100) as usize;
        let top_share = sorted.iter().take(top).sum::<usize>() as f64 / events.len() as f64;
        assert!(top_share > 0.3, "top 1% of keys got only {top_share}");
    }

    #[test]
    fn sessions_follow_successors() {
        let config = GeneratorConfig::default();
        let g = Generator::new(config.clone(), 0, 1).unwrap();
        let events = generate(&config, 50_000);
        let mut last: HashMap<&str, u32> = HashMap::new();
        let (mut pairs, mut followed) = (0, 0);
        for e in &events {
            let key = key_id(&e.key);
            if let Some(prev) = last.insert(&e.client, key) {
                pairs += 1;
                followed += usize::from(g.successors(prev).contains(&key));
            }
        }
        let share = followed as f64 / pairs as f64;
        // Expected about follow_probability * (1 - 1 / session_length) plus chance; chance alone, the
        // share that lands on the successors of an unrelated key, is far lower.
        assert!(share > 0.5, "only {share} of accesses followed a successor");
        let mut last: HashMap<&str, u32> = HashMap::new();
        let mut by_chance = 0;
        for e in &events {
            let key = key_id(&e.key);
            if let Some(prev) = last.insert(&e.client, key) {
                let unrelated = (prev + 1) % config.keys;
                by_chance += usize::from(g.successors(unrelated).contains(&key));
            }
        }
        let chance = by_chance as f64 / pairs as f64;
        assert!(
            chance < 0.1,
            "{chance} followed an unrelated key's successors"
        );
    }

    #[test]
    fn customers_drift_between_regions() {
        let config = GeneratorConfig {
            customers: 30,
            events_per_second: 5.0,
            drift_per_hour: 0.2,
            drift_ramp_minutes: 30.0,
            diurnal_amplitude: 0.0,
            ..GeneratorConfig::default()
        };
        let mut g = Generator::new(config.clone(), 0, 1).unwrap();
        let end = config.start_ms + 12 * HOUR_MS;
        // Per customer, region counts in the first and in the last hour.
        let mut first: HashMap<String, HashMap<String, usize>> = HashMap::new();
        let mut last: HashMap<String, HashMap<String, usize>> = HashMap::new();
        let mut home_hits = (0, 0);
        loop {
            let e = g.next_event();
            if e.ts >= end {
                break;
            }
            let window = if e.ts < config.start_ms + HOUR_MS {
                home_hits.0 += usize::from(e.region == e.attrs["home"]);
                home_hits.1 += 1;
                &mut first
            } else if e.ts >= end - HOUR_MS {
                &mut last
            } else {
                continue;
            };
            *window
                .entry(e.client)
                .or_default()
                .entry(e.region)
                .or_default() += 1;
        }
        let dominant = |counts: &HashMap<String, usize>| {
            counts
                .iter()
                .max_by_key(|(_, n)| **n)
                .map(|(r, _)| r.clone())
        };
        let moved = first
            .iter()
            .filter(|(c, counts)| last.get(*c).and_then(dominant) != dominant(counts))
            .count();
        assert!(
            moved >= 5 && moved < first.len(),
            "{moved} of {} moved",
            first.len()
        );
        // Early on, traffic is mostly from home (0.85 minus the few that already move).
        let home_share = home_hits.0 as f64 / home_hits.1 as f64;
        assert!(home_share > 0.7, "home share {home_share}");
    }

    #[test]
    fn load_follows_the_day() {
        let config = GeneratorConfig {
            events_per_second: 1.0,
            diurnal_amplitude: 0.9,
            // Midnight UTC, so the peak is at 06:00 and the trough at 18:00.
            start_ms: 1_699_920_000_000,
            ..GeneratorConfig::default()
        };
        let mut g = Generator::new(config.clone(), 0, 1).unwrap();
        let mut per_hour = [0usize; 24];
        loop {
            let e = g.next_event();
            let hour = ((e.ts - config.start_ms) / HOUR_MS) as usize;
            if hour >= 24 {
                break;
            }
            per_hour[hour] += 1;
        }
        let peak = per_hour[5] + per_hour[6];
        let trough = per_hour[17] + per_hour[18];
        assert!(
            peak > 5 * trough,
            "peak {peak} vs trough {trough}: {per_hour:?}"
        );
    }

    #[test]
    fn workers_split_customers_and_limit() {
        let config = GeneratorConfig {
            limit: Some(1001),
            ..GeneratorConfig::default()
        };
        let mut clients: Vec<BTreeSet<String>> = Vec::new();
        let mut total = 0;
        for worker in 0..2 {
            let mut g = Generator::new(config.clone(), worker, 2).unwrap();
            let mut seen = BTreeSet::new();
            let mut last_ts = 0;
            loop {
                let batch = g.poll(64).unwrap();
                for e in batch.records.into_iter().map(Result::unwrap) {
                    assert!(e.ts >= last_ts);
                    last_ts = e.ts;
                    assert_eq!(key_id(&e.client) as usize % 2, worker);
                    seen.insert(e.client);
                    total += 1;
                }
                if batch.finished {
                    assert_eq!(batch.progress_ms, Some(last_ts));
                    break;
                }
            }
            clients.push(seen);
        }
        assert_eq!(total, 1001);
        assert!(clients[0].is_disjoint(&clients[1]));
    }

    #[test]
    fn config_parses_with_defaults_and_rejects_unknown_fields() {
        let config: GeneratorConfig =
            serde_json::from_str(r#"{"seed": 3, "regions": ["a", "b"]}"#).unwrap();
        assert_eq!(config.seed, 3);
        assert_eq!(config.keys, GeneratorConfig::default().keys);
        assert!(serde_json::from_str::<GeneratorConfig>(r#"{"sead": 3}"#).is_err());
    }

    #[test]
    fn bad_configs_are_errors_not_panics() {
        let bad = [
            GeneratorConfig {
                customers: 0,
                ..Default::default()
            },
            GeneratorConfig {
                keys: 0,
                ..Default::default()
            },
            GeneratorConfig {
                regions: vec![],
                ..Default::default()
            },
            GeneratorConfig {
                zipf_exponent: f64::NAN,
                ..Default::default()
            },
            GeneratorConfig {
                events_per_second: 0.0,
                ..Default::default()
            },
            GeneratorConfig {
                session_length: 0.5,
                ..Default::default()
            },
            GeneratorConfig {
                diurnal_amplitude: 1.5,
                ..Default::default()
            },
            GeneratorConfig {
                drift_per_hour: -0.1,
                ..Default::default()
            },
        ];
        for config in bad {
            assert!(Generator::new(config, 0, 1).is_err());
        }
        let few = GeneratorConfig {
            customers: 2,
            ..Default::default()
        };
        assert!(Generator::new(few, 2, 3).is_err());
        assert!(Generator::new(GeneratorConfig::default(), 1, 1).is_err());
    }

    #[test]
    fn extreme_but_valid_configs_run() {
        let configs = [
            GeneratorConfig {
                keys: 1,
                customers: 1,
                regions: vec!["x".into()],
                ..Default::default()
            },
            GeneratorConfig {
                diurnal_amplitude: 1.0,
                drift_per_hour: 1.0,
                drift_ramp_minutes: 0.0,
                session_length: 1.0,
                zipf_exponent: 0.0,
                ..Default::default()
            },
            GeneratorConfig {
                zipf_exponent: 3.0,
                events_per_second: 1e9,
                ..Default::default()
            },
        ];
        for config in configs {
            let mut g = Generator::new(config, 0, 1).unwrap();
            for _ in 0..2000 {
                g.next_event();
            }
        }
    }
}
