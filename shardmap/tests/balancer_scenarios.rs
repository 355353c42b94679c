//! The balancer on hand-checkable scenarios, against plain recomputations of what it should do.

use shardcast_shardmap::{
    split_point, BalanceAction, BalanceConfig, BalanceDecision, BalanceMode, Balancer, HashRange,
    HoltForecaster, LastValueForecaster, MapChange, ShardMap, Threshold, RING,
};

fn nodes(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("n{i}")).collect()
}

/// The ring position at `frac` of shard `i` of a uniform map of `n` shards.
fn pos(i: u64, n: u64, frac: f64) -> u32 {
    let lo = RING * i / n;
    let width = RING / n;
    (lo + (width as f64 * frac) as u64) as u32
}

/// Shard loads of `keys` under `map`, summed key by key: the plain reference.
fn shard_loads(map: &ShardMap, keys: &[(u32, f64)]) -> Vec<f64> {
    map.shards()
        .map(|s| {
            keys.iter()
                .filter(|(p, _)| s.range.lo <= u64::from(*p) && u64::from(*p) < s.range.hi)
                .map(|(_, l)| l)
                .sum()
        })
        .collect()
}

fn max_over_mean(loads: &[f64]) -> f64 {
    let total: f64 = loads.iter().sum();
    let max = loads.iter().cloned().fold(f64::MIN, f64::max);
    max / (total / loads.len() as f64)
}

fn splits(decisions: &[BalanceDecision]) -> Vec<&BalanceDecision> {
    decisions
        .iter()
        .filter(|d| matches!(d.action, BalanceAction::Change(MapChange::Split { .. })))
        .collect()
}

/// Background keys (10 per window each) at 1/8, 2/8, 6/8, 7/8 of every shard, and two keys at 3/8
/// and 5/8 of shard 0 whose load grows by `step` each window from 0.
fn ramp_window(w: u64, shards: u64, step: f64) -> Vec<(u32, f64)> {
    let mut keys = Vec::new();
    for s in 0..shards {
        for frac in [0.125, 0.25, 0.75, 0.875] {
            keys.push((pos(s, shards, frac), 10.0));
        }
    }
    let ramp = step * w as f64;
    if ramp > 0.0 {
        keys.push((pos(0, shards, 0.375), ramp));
        keys.push((pos(0, shards, 0.625), ramp));
    }
    keys
}

fn ramp_config(mode: BalanceMode) -> BalanceConfig {
    BalanceConfig {
        mode,
        split_load: Threshold::Load(100.0),
        merge_load: Threshold::Load(1.0),
        churn_budget: 1.0,
        key_decay: 0.0,
        // Holt's damped trend sees a ramp's full height only a few windows ahead: copy early.
        shadow_lead: 4,
        ..BalanceConfig::default()
    }
}

/// Runs the ramp and returns every decision, and the shard-0 load per window.
fn run_ramp(mode: BalanceMode) -> (Vec<BalanceDecision>, Vec<f64>) {
    let map = ShardMap::uniform(4, &nodes(4), 1).unwrap();
    let mut balancer = Balancer::new(map, nodes(4), ramp_config(mode));
    let mut all = Vec::new();
    let mut hot = Vec::new();
    for w in 0..14 {
        let keys = ramp_window(w, 4, 5.0);
        hot.push(40.0 + 10.0 * w as f64);
        balancer.observe(w, keys.iter().copied());
        all.extend(balancer.decide(w, &mut HoltForecaster::default()));
    }
    (all, hot)
}

#[test]
fn predictive_splits_a_ramping_range_before_it_crosses_and_reactive_after_sustaining() {
    // Shard 0 carries 40 + 10·w in window w: above 100 from window 7 on.
    let (predictive, hot) = run_ramp(BalanceMode::Predictive);
    let (reactive, _) = run_ramp(BalanceMode::Reactive { sustain_windows: 3 });
    let p = splits(&predictive);
    let r = splits(&reactive);
    assert_eq!(p.len(), 1, "{predictive:#?}");
    assert_eq!(r.len(), 1, "{reactive:#?}");
    let (pw, rw) = (p[0].window as usize, r[0].window as usize);
    // Predictive: before the measured load is above the level.
    assert!(hot[pw] <= 100.0, "split in window {pw} at load {}", hot[pw]);
    // Reactive: windows 7, 8 and 9 above 100, so the split follows window 9.
    assert_eq!(rw, 9);
    assert!(
        p[0].forecast_peak > 100.0 && p[0].shard_load == hot[pw],
        "{:?}",
        p[0]
    );

    // The cut balances the two ramping keys: the one at 3/8 goes left with the two keys below.
    let MapChange::Split { at, .. } = p[0].change().unwrap().clone() else {
        unreachable!()
    };
    assert_eq!(at, u64::from(pos(0, 4, 0.375)) + 1);

    // A shadow copy was planned before the split, naming the range and node the move then used.
    let shadow = predictive
        .iter()
        .find_map(|d| match &d.action {
            BalanceAction::Shadow { range, to, .. } => Some((d.window, *range, to.clone())),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no shadow copy ahead of the split: {predictive:#?}"));
    assert!(
        shadow.0 < p[0].window,
        "shadow in {} and split in {pw}",
        shadow.0
    );
    let moved = predictive
        .iter()
        .find(|d| matches!(d.action, BalanceAction::Change(MapChange::Move { .. })))
        .expect("a half moved");
    let BalanceAction::Change(MapChange::Move { shard, to, .. }) = &moved.action else {
        unreachable!()
    };
    assert_eq!(moved.window, p[0].window);
    assert_eq!(*to, shadow.2);
    assert!(
        moved.reason.contains("promotes the shadow copy"),
        "{}",
        moved.reason
    );
    let MapChange::Split { left, right, .. } = p[0].change().unwrap().clone() else {
        unreachable!()
    };
    assert!(*shard == left || *shard == right);
    assert!(
        !predictive
            .iter()
            .any(|d| matches!(d.action, BalanceAction::CancelShadow { .. })),
        "{predictive:#?}"
    );
    // Node n0 served all of shard 0; the moved half carried half of the window's load on it.
    assert_eq!(moved.load_moved, hot[pw] / 2.0);
    assert_eq!(moved.keys_moved, 3);
    // Reactive plans no shadows.
    assert!(!reactive
        .iter()
        .any(|d| matches!(d.action, BalanceAction::Shadow { .. })));
}

#[test]
fn reactive_waits_for_consecutive_windows_above_the_level() {
    let map = ShardMap::uniform(2, &nodes(2), 0).unwrap();
    let config = BalanceConfig {
        mode: BalanceMode::Reactive { sustain_windows: 3 },
        split_load: Threshold::Load(50.0),
        merge_load: Threshold::Load(1.0),
        key_decay: 0.0,
        ..BalanceConfig::default()
    };
    let mut balancer = Balancer::new(map, nodes(2), config);
    // Shard 0's load per window: two above, one under, then three above.
    let loads = [60.0, 60.0, 40.0, 60.0, 60.0, 60.0, 60.0];
    let mut split_windows = Vec::new();
    for (w, load) in loads.iter().enumerate() {
        let keys = [
            (pos(0, 2, 0.25), load / 2.0),
            (pos(0, 2, 0.75), load / 2.0),
            (pos(1, 2, 0.5), 10.0),
        ];
        balancer.observe(w as u64, keys);
        for d in balancer.decide(w as u64, &mut LastValueForecaster) {
            if matches!(d.action, BalanceAction::Change(MapChange::Split { .. })) {
                split_windows.push(w);
                assert_eq!(d.forecast_peak, 60.0, "the level held");
            }
        }
    }
    assert_eq!(split_windows, vec![5]);
}

#[test]
fn static_never_changes_the_map() {
    let map = ShardMap::uniform(4, &nodes(4), 1).unwrap();
    let mut balancer = Balancer::new(map.clone(), nodes(4), ramp_config(BalanceMode::Static));
    for w in 0..20 {
        balancer.observe(w, ramp_window(w, 4, 20.0));
        assert!(balancer
            .decide(w, &mut HoltForecaster::default())
            .is_empty());
    }
    assert_eq!(balancer.map(), &map);
}

#[test]
fn the_churn_budget_bounds_the_load_moved_per_round_hottest_first() {
    // 8 shards on 2 nodes; the shards of node n0 (even ones) get hot at once.
    let map = ShardMap::uniform(8, &nodes(2), 0).unwrap();
    let config = BalanceConfig {
        mode: BalanceMode::Reactive { sustain_windows: 1 },
        split_load: Threshold::MeanMultiple(1.5),
        merge_load: Threshold::MeanMultiple(0.01),
        churn_budget: 0.2,
        key_decay: 0.0,
        ..BalanceConfig::default()
    };
    let mut balancer = Balancer::new(map, nodes(2), config);
    let mut keys = Vec::new();
    for s in 0..8u64 {
        let hot = if s % 2 == 0 { 20.0 + s as f64 } else { 2.0 };
        keys.push((pos(s, 8, 0.25), hot));
        keys.push((pos(s, 8, 0.75), hot));
    }
    let total: f64 = keys.iter().map(|(_, l)| l).sum();
    balancer.observe(0, keys.iter().copied());
    let decisions = balancer.decide(0, &mut LastValueForecaster);
    let split_count = splits(&decisions).len();
    let moves: Vec<&BalanceDecision> = decisions
        .iter()
        .filter(|d| matches!(d.action, BalanceAction::Change(MapChange::Move { .. })))
        .collect();
    let moved: f64 = moves.iter().map(|d| d.load_moved).sum();
    assert_eq!(split_count, 4, "{decisions:#?}");
    assert!(!moves.is_empty());
    assert!(moves.len() < split_count, "the budget stops some moves");
    assert!(moved <= 0.2 * total + 1e-9, "moved {moved} of {total}");
    // Hottest need first: the first split is of shard 6 (load 52), the hottest.
    let MapChange::Split { shard, .. } = splits(&decisions)[0].change().unwrap().clone() else {
        unreachable!()
    };
    assert_eq!(shard, 6);
    // With no budget nothing changes node.
    let map = ShardMap::uniform(8, &nodes(2), 0).unwrap();
    let config = BalanceConfig {
        churn_budget: 0.0,
        ..balancer.config().clone()
    };
    let mut frozen = Balancer::new(map, nodes(2), config);
    frozen.observe(0, keys.iter().copied());
    let decisions = frozen.decide(0, &mut LastValueForecaster);
    assert_eq!(splits(&decisions).len(), 4);
    assert!(decisions.iter().all(|d| d.load_moved == 0.0));
}

#[test]
fn halves_of_a_split_are_not_merged_back_within_the_delay() {
    let map = ShardMap::uniform(2, &nodes(1), 0).unwrap();
    let config = BalanceConfig {
        mode: BalanceMode::Reactive { sustain_windows: 1 },
        split_load: Threshold::Load(50.0),
        merge_load: Threshold::Load(20.0),
        cooldown_windows: 2,
        merge_delay_windows: 10,
        key_decay: 0.0,
        ..BalanceConfig::default()
    };
    let mut balancer = Balancer::new(map, nodes(1), config);
    let mut all = Vec::new();
    for w in 0..30u64 {
        // A burst in window 0, then quiet: every shard and pair is cold from window 1 on.
        let load = if w == 0 { 40.0 } else { 1.0 };
        let keys = [
            (pos(0, 2, 0.25), load),
            (pos(0, 2, 0.75), load),
            (pos(1, 2, 0.5), 30.0),
        ];
        balancer.observe(w, keys);
        all.extend(balancer.decide(w, &mut LastValueForecaster));
    }
    let split = splits(&all);
    assert_eq!(split.len(), 1, "{all:#?}");
    let MapChange::Split { left, right, .. } = split[0].change().unwrap().clone() else {
        unreachable!()
    };
    let merge_back = all
        .iter()
        .find_map(|d| match d.change() {
            Some(MapChange::Merge {
                left: l, right: r, ..
            }) if *l == left && *r == right => Some(d.window),
            _ => None,
        })
        .expect("the halves merge once the delay is over");
    assert_eq!(merge_back, split[0].window + 10);
}

#[test]
fn imbalance_fields_match_a_plain_recomputation() {
    let map = ShardMap::uniform(4, &nodes(2), 0).unwrap();
    let config = BalanceConfig {
        mode: BalanceMode::Reactive { sustain_windows: 1 },
        split_load: Threshold::MeanMultiple(2.0),
        merge_load: Threshold::MeanMultiple(0.2),
        churn_budget: 1.0,
        key_decay: 0.0,
        ..BalanceConfig::default()
    };
    let mut balancer = Balancer::new(map, nodes(2), config);
    let keys = vec![
        (pos(0, 4, 0.2), 60.0),
        (pos(0, 4, 0.4), 30.0),
        (pos(0, 4, 0.8), 30.0),
        (pos(1, 4, 0.5), 20.0),
        (pos(2, 4, 0.5), 15.0),
        (pos(3, 4, 0.5), 25.0),
    ];
    balancer.observe(0, keys.iter().copied());
    let mut replay = balancer.map().clone();
    let decisions = balancer.decide(0, &mut LastValueForecaster);
    assert!(!decisions.is_empty());
    for d in &decisions {
        let before = shard_loads(&replay, &keys);
        let node_before = node_loads(&replay, &keys, 2);
        let change = d.change().expect("reactive rounds change the map");
        replay.apply(change).unwrap();
        let after = shard_loads(&replay, &keys);
        let node_after = node_loads(&replay, &keys, 2);
        assert!(
            (d.imbalance_before - max_over_mean(&before)).abs() < 1e-9,
            "{d:?}"
        );
        assert!(
            (d.imbalance_after - max_over_mean(&after)).abs() < 1e-9,
            "{d:?}"
        );
        assert!(
            (d.node_imbalance_before - max_over_mean(&node_before)).abs() < 1e-9,
            "{d:?}"
        );
        assert!(
            (d.node_imbalance_after - max_over_mean(&node_after)).abs() < 1e-9,
            "{d:?}"
        );
        assert_eq!(d.version, replay.version());
    }
    // Shard 0 (120 of 180; level 2 × 45 = 90) splits after its 60-load key, and a half moves.
    let split = splits(&decisions)[0];
    assert_eq!(split.shard_load, 120.0);
    assert_eq!(
        max_over_mean(&[120.0, 20.0, 15.0, 25.0]),
        split.imbalance_before
    );
    assert!(decisions
        .iter()
        .any(|d| matches!(d.action, BalanceAction::Change(MapChange::Move { .. }))));
    assert_eq!(&replay, balancer.map());
}

fn node_loads(map: &ShardMap, keys: &[(u32, f64)], n: usize) -> Vec<f64> {
    let names = nodes(n);
    let mut loads = vec![0.0; n];
    for (shard, load) in map.shards().zip(shard_loads(map, keys)) {
        let i = names.iter().position(|x| *x == shard.node).unwrap();
        loads[i] += load;
    }
    loads
}

#[test]
fn cold_neighbours_on_two_nodes_are_brought_together_then_merged() {
    let map = ShardMap::uniform(4, &nodes(2), 0).unwrap();
    let config = BalanceConfig {
        mode: BalanceMode::Reactive { sustain_windows: 2 },
        split_load: Threshold::MeanMultiple(3.0),
        merge_load: Threshold::MeanMultiple(0.5),
        churn_budget: 1.0,
        ..BalanceConfig::default()
    };
    let mut balancer = Balancer::new(map, nodes(2), config);
    let keys = [
        (pos(0, 4, 0.5), 2.0),
        (pos(1, 4, 0.5), 3.0),
        (pos(2, 4, 0.5), 50.0),
        (pos(3, 4, 0.5), 50.0),
    ];
    let mut all = Vec::new();
    for w in 0..2 {
        balancer.observe(w, keys);
        all.extend(balancer.decide(w, &mut LastValueForecaster));
    }
    // Shards 0 (n0, load 2) and 1 (n1, load 3) are under 0.5 × 105 / 4 combined, for 2 windows.
    let kinds: Vec<&MapChange> = all.iter().filter_map(|d| d.change()).collect();
    assert_eq!(kinds.len(), 2, "{all:#?}");
    assert_eq!(
        kinds[0],
        &MapChange::Move {
            shard: 0,
            from: "n0".into(),
            to: "n1".into()
        }
    );
    assert!(matches!(
        kinds[1],
        MapChange::Merge {
            left: 0,
            right: 1,
            ..
        }
    ));
    assert_eq!(all[0].load_moved, 2.0);
    assert_eq!(balancer.map().lookup_position(pos(0, 4, 0.5)).node, "n1");
    assert_eq!(balancer.map().shards().count(), 3);
}

#[test]
fn a_node_down_fails_its_shards_over_to_their_first_live_replica() {
    let map = ShardMap::uniform(6, &nodes(3), 1).unwrap();
    let before = map.clone();
    let mut balancer = Balancer::new(map, nodes(3), BalanceConfig::default());
    balancer.observe(0, [(pos(1, 6, 0.5), 7.0)]);
    balancer.decide(0, &mut HoltForecaster::default());
    let decisions = balancer.node_down("n1");
    for shard in before.shards().filter(|s| s.node == "n1") {
        let d = decisions
            .iter()
            .find(|d| matches!(d.change(), Some(MapChange::Failover { shard: id, .. }) if *id == shard.id))
            .expect("every shard of n1 fails over");
        let Some(MapChange::Failover { to, .. }) = d.change() else {
            unreachable!()
        };
        assert_eq!(*to, shard.replicas[0]);
        assert_eq!(
            balancer.map().get(shard.id).unwrap().node,
            shard.replicas[0]
        );
    }
    // The 7 accesses of shard 1 (on n1) changed node.
    assert_eq!(decisions.iter().map(|d| d.load_moved).sum::<f64>(), 7.0);
    for shard in balancer.map().shards() {
        assert_ne!(shard.node, "n1");
        assert!(!shard.replicas.contains(&"n1".to_string()), "{shard:?}");
    }
    // Then n2 goes too: its shards have no live replica left and land on n0, the only live node.
    balancer.node_down("n2");
    assert!(balancer.map().shards().all(|s| s.node == "n0"));
    assert!(balancer.node_down("n2").is_empty(), "already down");
}

#[test]
fn split_points_are_optimal_against_every_possible_cut() {
    // A small deterministic generator (no dependency needed for a test input).
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let range = HashRange {
        lo: 1000,
        hi: 1_000_000,
    };
    for _ in 0..500 {
        let n = 1 + next() % 12;
        let mut keys: Vec<(u32, f64)> = (0..n)
            .map(|_| {
                let p = 1000 + (next() % 999_000) as u32;
                let heavy = next() % 5 == 0;
                (
                    p,
                    if heavy {
                        50.0
                    } else {
                        1.0 + (next() % 10) as f64
                    },
                )
            })
            .collect();
        keys.sort_by_key(|(p, _)| *p);
        keys.dedup_by_key(|(p, _)| *p);
        let total: f64 = keys.iter().map(|(_, l)| l).sum();
        // Every cut at or right after a key, with load on both sides.
        let best = keys
            .iter()
            .flat_map(|(p, _)| [u64::from(*p), u64::from(*p) + 1])
            .filter(|at| *at > range.lo && *at < range.hi)
            .map(|at| {
                let left: f64 = keys
                    .iter()
                    .filter(|(p, _)| u64::from(*p) < at)
                    .map(|(_, l)| l)
                    .sum();
                (left, total - left)
            })
            .filter(|(l, r)| *l > 0.0 && *r > 0.0)
            .map(|(l, r)| l.max(r))
            .fold(f64::INFINITY, f64::min);
        match split_point(&keys, range, 1) {
            Some(p) => {
                assert!(
                    (p.busier() - best).abs() < 1e-9,
                    "{keys:?}: {p:?} against {best}"
                );
                assert!((p.left_load + p.right_load - total).abs() < 1e-9);
            }
            None => assert!(
                best.is_infinite(),
                "{keys:?}: no split, but {best} was possible"
            ),
        }
    }
}

#[test]
fn histories_survive_splits_and_memory_stays_bounded() {
    let map = ShardMap::uniform(2, &nodes(2), 0).unwrap();
    let config = BalanceConfig {
        mode: BalanceMode::Reactive { sustain_windows: 2 },
        split_load: Threshold::MeanMultiple(1.5),
        merge_load: Threshold::MeanMultiple(0.05),
        history: 8,
        bucket_bits: 10,
        max_keys: 500,
        ..BalanceConfig::default()
    };
    let bound = (8usize << 10) + 8 + 8 * 256 + 500 + 2 * 300;
    let mut balancer = Balancer::new(map, nodes(2), config);
    let mut state = 7u64;
    let mut checked_split = false;
    for w in 0..400u64 {
        // 300 fresh keys a window, most in the lower half of the ring.
        let keys: Vec<(u32, f64)> = (0..300)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                let p = (state >> 33) as u32;
                (if p.is_multiple_of(4) { p } else { p / 2 }, 1.0)
            })
            .collect();
        balancer.observe(w, keys.iter().copied());
        let parents: Vec<(u64, HashRange, Vec<f64>)> = balancer
            .map()
            .shards()
            .map(|s| (s.id, s.range, balancer.load_history().shard(s.id).to_vec()))
            .collect();
        for d in balancer.decide(w, &mut LastValueForecaster) {
            if let Some(MapChange::Split {
                shard, left, right, ..
            }) = d.change()
            {
                // The parent's history as the split saw it: this window appended, the oldest
                // dropped once 8 are kept.
                let (_, range, before) = parents.iter().find(|(id, _, _)| id == shard).unwrap();
                let now: f64 = keys
                    .iter()
                    .filter(|(p, _)| range.lo <= u64::from(*p) && u64::from(*p) < range.hi)
                    .map(|(_, l)| l)
                    .sum();
                let mut expected = before.clone();
                expected.push(now);
                if expected.len() > 8 {
                    expected.remove(0);
                }
                let h = balancer.load_history();
                assert_eq!(h.shard(*left).len(), expected.len());
                for (i, v) in expected.iter().enumerate() {
                    let sum = h.shard(*left)[i] + h.shard(*right)[i];
                    assert!((sum - v).abs() < 1e-6, "window {i}: {sum} against {v}");
                }
                checked_split = true;
            }
        }
        assert!(balancer.load_history().footprint() <= bound, "window {w}");
    }
    assert!(checked_split);
}

/// A forecaster that says what it is told: `rows[i]` for shard `i` in ring order (shards beyond
/// the rows repeat their last load).
struct Scripted {
    rows: Vec<Vec<f64>>,
}

impl shardcast_shardmap::LoadForecaster for Scripted {
    fn forecast(&mut self, histories: &[&[f64]], _next: u64, horizon: usize) -> Vec<Vec<f64>> {
        histories
            .iter()
            .enumerate()
            .map(|(i, h)| match self.rows.get(i) {
                Some(row) => row[..horizon].to_vec(),
                None => vec![h.last().copied().unwrap_or(0.0); horizon],
            })
            .collect()
    }
}

/// Two shards; shard 0 has two keys of `load / 2`, shard 1 one key of 50.
fn two_shards(confidence: f64) -> Balancer {
    let config = BalanceConfig {
        split_load: Threshold::Load(100.0),
        merge_load: Threshold::Load(1.0),
        warmup_windows: 1,
        confidence,
        ..BalanceConfig::default()
    };
    Balancer::new(
        ShardMap::uniform(2, &nodes(2), 0).unwrap(),
        nodes(2),
        config,
    )
}

fn window_of(load: f64) -> [(u32, f64); 3] {
    [
        (pos(0, 2, 0.25), load / 2.0),
        (pos(0, 2, 0.75), load / 2.0),
        (pos(1, 2, 0.5), 50.0),
    ]
}

#[test]
fn predictive_splits_on_a_crossing_that_lasts_not_on_a_bump_forecast_to_fade() {
    // Horizon 3 plus shadow lead 2: five forecast windows.
    let bump = vec![150.0, 90.0, 80.0, 70.0, 60.0];
    let ramp = vec![90.0, 110.0, 120.0, 130.0, 140.0];
    let late = vec![90.0, 95.0, 99.0, 120.0, 130.0];
    let flat = vec![50.0; 5];
    let mut decided = Vec::new();
    for row in [bump, ramp, late] {
        let mut balancer = two_shards(0.0);
        balancer.observe(0, window_of(80.0));
        let mut forecaster = Scripted {
            rows: vec![row, flat.clone()],
        };
        decided.push(balancer.decide(0, &mut forecaster));
    }
    assert!(decided[0].is_empty(), "{:#?}", decided[0]);
    assert_eq!(splits(&decided[1]).len(), 1, "{:#?}", decided[1]);
    assert!(
        decided[1][0].reason.contains("in 2 window(s)"),
        "{}",
        decided[1][0].reason
    );
    assert_eq!(
        decided[1][0].forecast_peak, 120.0,
        "peak within the horizon of 3"
    );
    // Above only beyond the horizon: a shadow copy, no split yet.
    assert!(splits(&decided[2]).is_empty());
    assert!(
        matches!(decided[2][0].action, BalanceAction::Shadow { .. }),
        "{:#?}",
        decided[2]
    );
}

#[test]
fn a_noisy_shard_must_clear_the_level_by_its_typical_forecast_error() {
    // Window 0: shard 0 carries 40 and is forecast at 60. Window 1: it carries 160, so that
    // forecast missed by 100, and the next one says 110, 10 above the level of 100.
    let mut balancer = two_shards(1.0);
    let mut forecaster = Scripted {
        rows: vec![vec![60.0; 5], vec![50.0; 5]],
    };
    balancer.observe(0, window_of(40.0));
    assert!(balancer.decide(0, &mut forecaster).is_empty());
    forecaster.rows[0] = vec![110.0; 5];
    balancer.observe(1, window_of(160.0));
    // With a margin of one typical error (100): 110 − 100 is not above 100.
    assert!(splits(&balancer.decide(1, &mut forecaster)).is_empty());
    // Trusting the forecast as it is, the same windows split the shard.
    let mut trusting = two_shards(0.0);
    forecaster.rows[0] = vec![60.0; 5];
    trusting.observe(0, window_of(40.0));
    trusting.decide(0, &mut forecaster);
    forecaster.rows[0] = vec![110.0; 5];
    trusting.observe(1, window_of(160.0));
    assert_eq!(splits(&trusting.decide(1, &mut forecaster)).len(), 1);
}
