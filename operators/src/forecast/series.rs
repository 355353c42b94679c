//! Per-shard per-epoch count series, built from `(timestamp, key)` pairs, for evaluation and training.

use super::ForecastError;

/// The most cells (epochs × shards) [`shard_series`] builds, so a stray timestamp far from the others is an
/// error rather than an allocation of gigabytes.
const MAX_CELLS: u64 = 64 << 20;

/// The shard of `key` among `shards`: FNV-1a 64 of the key's bytes, modulo `shards` (0 when `shards` is 0).
///
/// `models/train_forecaster.py` computes the same function, so the series it trains on are the ones the
/// evaluation and the tests rebuild here.
pub fn shard_of(key: &str, shards: u32) -> u32 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    if shards == 0 {
        return 0;
    }
    let hash = key
        .bytes()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    (hash % u64::from(shards)) as u32
}

/// One series of per-epoch counts.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochSeries {
    /// The series' name (for shards, `shard-<index>`).
    pub name: String,
    /// The epoch of `counts[0]`.
    pub first_epoch: u64,
    /// Count per epoch, one entry for every epoch from `first_epoch` on.
    pub counts: Vec<f64>,
}

/// Accesses per shard per epoch: for each of the `shards` shards, the number of `(ts_ms, key)` pairs with
/// `shard_of(key, shards)` equal to it, per epoch `floor(ts_ms / tick_ms)`.
///
/// Every series covers the same epochs, from the earliest to the latest epoch of any pair, with 0 where a
/// shard had no access; the pairs need not be in time order. No pairs give series with no epochs.
pub fn shard_series<I, K>(
    events: I,
    shards: u32,
    tick_ms: u64,
) -> Result<Vec<EpochSeries>, ForecastError>
where
    I: IntoIterator<Item = (u64, K)>,
    K: AsRef<str>,
{
    if shards == 0 || tick_ms == 0 {
        return Err(ForecastError::InvalidParameter(format!(
            "shard series need at least one shard and a tick of at least 1 ms (got {shards} shards, \
             {tick_ms} ms)"
        )));
    }
    let cells: Vec<(u64, u32)> = events
        .into_iter()
        .map(|(ts, key)| (ts / tick_ms, shard_of(key.as_ref(), shards)))
        .collect();
    let first = cells.iter().map(|(e, _)| *e).min().unwrap_or(0);
    // Saturating: a span of all of u64 must become the error below, not an overflow.
    let epochs = cells
        .iter()
        .map(|(e, _)| (e - first).saturating_add(1))
        .max()
        .unwrap_or(0);
    if epochs.saturating_mul(u64::from(shards)) > MAX_CELLS {
        return Err(ForecastError::BadInput(format!(
            "the events span {epochs} epochs of {tick_ms} ms over {shards} shards, more than {MAX_CELLS} \
             cells: is a timestamp in the wrong unit?"
        )));
    }
    let mut series: Vec<EpochSeries> = (0..shards)
        .map(|s| EpochSeries {
            name: format!("shard-{s}"),
            first_epoch: first,
            counts: vec![0.0; epochs as usize],
        })
        .collect();
    for (epoch, shard) in cells {
        series[shard as usize].counts[(epoch - first) as usize] += 1.0;
    }
    Ok(series)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_reference_values() {
        // Published FNV-1a 64 test vectors: "" -> cbf29ce484222325, "a" -> af63dc4c8601ec8c.
        assert_eq!(
            shard_of("", u32::MAX),
            (0xcbf2_9ce4_8422_2325u64 % 0xffff_ffff) as u32
        );
        assert_eq!(
            shard_of("a", u32::MAX),
            (0xaf63_dc4c_8601_ec8cu64 % 0xffff_ffff) as u32
        );
        assert_eq!(shard_of("a", 0), 0);
        let spread: std::collections::BTreeSet<u32> =
            (0..200).map(|i| shard_of(&format!("k{i}"), 8)).collect();
        assert_eq!(spread.len(), 8);
    }

    #[test]
    fn counts_per_shard_and_epoch() {
        let events = vec![(2_500u64, "a"), (1_000, "a"), (1_999, "b"), (4_000, "a")];
        let series = shard_series(events, 1, 1000).unwrap();
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].first_epoch, 1);
        assert_eq!(series[0].counts, vec![2.0, 1.0, 0.0, 1.0]);
        let (a, b) = (shard_of("a", 2), shard_of("b", 2));
        let series = shard_series(vec![(0u64, "a"), (0, "b"), (1, "a")], 2, 1).unwrap();
        let total: f64 = series.iter().flat_map(|s| &s.counts).sum();
        assert_eq!(total, 3.0);
        assert_eq!(series[a as usize].counts[1], 1.0);
        if a != b {
            assert_eq!(series[b as usize].counts, vec![1.0, 0.0]);
        }
    }

    #[test]
    fn bad_settings_and_spans_are_errors() {
        assert!(shard_series(vec![(0u64, "a")], 0, 1).is_err());
        assert!(shard_series(vec![(0u64, "a")], 1, 0).is_err());
        assert!(shard_series(vec![(0u64, "a"), (u64::MAX, "a")], 4, 1).is_err());
        assert!(shard_series(Vec::<(u64, &str)>::new(), 2, 1).unwrap()[0]
            .counts
            .is_empty());
    }
}
