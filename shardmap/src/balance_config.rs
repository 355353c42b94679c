//! The settings of the shard balancer: when to split and merge, how far to look ahead, and the
//! anti-thrash limits.

use serde::{Deserialize, Serialize};

use crate::BalanceError;

/// How the balancer changes the map.
///
/// In `pipelines.toml` (or any serde format): `mode = "predictive"`, `mode = "static"` or
/// `mode = { reactive = { sustain_windows = 3 } }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BalanceMode {
    /// Never changes the map: static hashing over the initial ranges.
    Static,
    /// Splits a shard once its *measured* load has been above the split threshold for
    /// `sustain_windows` windows in a row, and merges neighbours once their combined load has stayed
    /// under the merge threshold as long. TiKV's load-based split waits for 10 consecutive seconds
    /// above `split.qps-threshold`; CockroachDB samples a range while it stays above
    /// `kv.range_split.load_qps_threshold` before splitting it.
    Reactive {
        /// Consecutive windows above the threshold before a split (at least 1).
        sustain_windows: u32,
    },
    /// Splits a shard whose *forecast* crosses the split threshold within the horizon, before the
    /// load gets there, and plans the shadow copy of the half that will move earlier still.
    Predictive,
}

/// A load level, absolute or relative to the window's mean shard load.
///
/// In `pipelines.toml`: `split_load = { mean_multiple = 2.0 }` or `split_load = { load = 500.0 }`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Threshold {
    /// This load per window, whatever the total.
    Load(f64),
    /// This multiple of `window total / initial shard count`: the mean shard load of the initial
    /// layout. Relative thresholds follow the traffic, so a busy hour does not split every shard.
    MeanMultiple(f64),
}

impl Threshold {
    /// The load level for a window whose total load is `total`, on a map that started with
    /// `initial_shards` shards.
    ///
    /// ```
    /// use shardcast_shardmap::Threshold;
    /// assert_eq!(Threshold::MeanMultiple(2.0).level(800.0, 16), 100.0);
    /// assert_eq!(Threshold::Load(42.0).level(800.0, 16), 42.0);
    /// ```
    pub fn level(&self, total: f64, initial_shards: usize) -> f64 {
        match *self {
            Threshold::Load(load) => load,
            Threshold::MeanMultiple(multiple) => multiple * total / initial_shards.max(1) as f64,
        }
    }

    fn value(&self) -> f64 {
        match *self {
            Threshold::Load(v) | Threshold::MeanMultiple(v) => v,
        }
    }
}

/// Settings of a [`Balancer`](crate::Balancer). Every field has a default, so a config file names
/// only what it changes; unknown fields are rejected.
///
/// ```
/// use shardcast_shardmap::{BalanceConfig, BalanceMode};
/// let config: BalanceConfig =
///     serde_json::from_str(r#"{"mode": {"reactive": {"sustain_windows": 5}}, "horizon": 4}"#).unwrap();
/// assert_eq!(config.mode, BalanceMode::Reactive { sustain_windows: 5 });
/// assert_eq!(config.cooldown_windows, BalanceConfig::default().cooldown_windows);
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BalanceConfig {
    /// Static, reactive or predictive.
    pub mode: BalanceMode,
    /// Split a shard whose load exceeds this (predictive: whose forecast does, within `horizon`).
    pub split_load: Threshold,
    /// Merge adjacent shards whose combined load stays under this, now and (predictive) over the
    /// whole horizon.
    pub merge_load: Threshold,
    /// Windows ahead the forecast is checked against the split and merge thresholds.
    pub horizon: usize,
    /// Extra windows beyond `horizon`: a forecast crossing within `horizon + shadow_lead` starts the
    /// shadow copy of the range that will move, before the split and move are due.
    pub shadow_lead: usize,
    /// A shard split, merged or moved is left alone for this many windows (its halves too).
    pub cooldown_windows: u64,
    /// A shard born of a split is not merged within this many windows of the split.
    pub merge_delay_windows: u64,
    /// Share of the window's total load that may change node per round (moves and the moves that
    /// precede merges), hottest need first. Slicer bounds the churn of each rebalancing round the
    /// same way.
    pub churn_budget: f64,
    /// Never more shards than this.
    pub max_shards: usize,
    /// Never fewer shards than this (merges stop).
    pub min_shards: usize,
    /// Neither half of a split may be narrower than this many ring positions.
    pub min_width: u64,
    /// Windows of load history kept per shard (what the forecaster sees).
    pub history: usize,
    /// Windows observed before the first forecast-driven decision (a forecast of a handful of
    /// points is noise).
    pub warmup_windows: u64,
    /// The ring is cut into `2^bucket_bits` buckets whose load history lets a split or merge hand
    /// its shards a history of their own. Memory: `2^bucket_bits × history` numbers.
    pub bucket_bits: u32,
    /// Weight of the previous key loads when choosing a split point: the key loads are
    /// `decay × previous + latest window`, so a split point follows the last few windows, not the
    /// noise of one (0: the latest window only).
    pub key_decay: f64,
    /// Keys whose decayed load is remembered for split points; the coldest are forgotten first.
    pub max_keys: usize,
    /// Predictive: a forecast counts as crossing the split level only when it is above it by this
    /// many times the shard's typical one-step forecast error (an EWMA of `|forecast − actual|`),
    /// so a noisy shard is not split on noise; reactive rules filter noise by `sustain_windows`
    /// instead. 0 trusts the forecast as it is.
    pub confidence: f64,
}

impl Default for BalanceConfig {
    /// Predictive; split above 2x the initial mean shard load, merge neighbours that together stay
    /// under 1x (so the shard count drifts back to the initial layout once a hot spot cools, while
    /// the halves of a fresh split, about 1x each, stay apart); a forecast must clear the split
    /// level by one typical forecast error; 3 windows of horizon plus 2 of shadow lead (5 in all,
    /// within the 8 of the shipped ONNX model); cooldown 5, merge delay 30 windows; 10% of the load
    /// may move per round. `shardcast replay` measured these on the NASA and CloudPhysics traces.
    fn default() -> Self {
        BalanceConfig {
            mode: BalanceMode::Predictive,
            split_load: Threshold::MeanMultiple(2.0),
            merge_load: Threshold::MeanMultiple(1.0),
            horizon: 3,
            shadow_lead: 2,
            cooldown_windows: 5,
            merge_delay_windows: 30,
            churn_budget: 0.1,
            max_shards: 256,
            min_shards: 1,
            min_width: 1 << 12,
            history: 32,
            warmup_windows: 4,
            bucket_bits: 16,
            key_decay: 0.5,
            max_keys: 1 << 18,
            confidence: 1.0,
        }
    }
}

/// Largest `bucket_bits` accepted: 2^20 buckets.
pub(crate) const MAX_BUCKET_BITS: u32 = 20;

impl BalanceConfig {
    /// Checks every setting against its range; the error names the first one out of it.
    pub fn validate(&self) -> Result<(), BalanceError> {
        let bad = |field: &'static str, reason: String| Err(BalanceError::Config { field, reason });
        if let BalanceMode::Reactive { sustain_windows: 0 } = self.mode {
            return bad("sustain_windows", "must be at least 1".into());
        }
        for (field, t) in [
            ("split_load", self.split_load),
            ("merge_load", self.merge_load),
        ] {
            if !(t.value().is_finite() && t.value() >= 0.0) {
                return bad(field, format!("must be finite and >= 0, got {t:?}"));
            }
        }
        if let (Threshold::MeanMultiple(s), Threshold::MeanMultiple(m))
        | (Threshold::Load(s), Threshold::Load(m)) = (self.split_load, self.merge_load)
        {
            // Halves of a split must not qualify for a merge right away, or the two rules thrash.
            if m >= s {
                return bad(
                    "merge_load",
                    format!("must be below split_load ({s}), got {m}"),
                );
            }
        }
        if self.horizon == 0 {
            return bad("horizon", "must be at least 1 window".into());
        }
        if !(self.churn_budget.is_finite() && (0.0..=1.0).contains(&self.churn_budget)) {
            return bad(
                "churn_budget",
                format!("must be a share in 0..=1, got {}", self.churn_budget),
            );
        }
        if self.max_shards == 0 || self.min_shards > self.max_shards {
            return bad(
                "max_shards",
                format!(
                    "must be at least 1 and at least min_shards ({}), got {}",
                    self.min_shards, self.max_shards
                ),
            );
        }
        if self.min_width == 0 {
            return bad("min_width", "must be at least 1 ring position".into());
        }
        if self.history == 0 {
            return bad("history", "must be at least 1 window".into());
        }
        if self.bucket_bits > MAX_BUCKET_BITS {
            return bad(
                "bucket_bits",
                format!(
                    "must be at most {MAX_BUCKET_BITS}, got {}",
                    self.bucket_bits
                ),
            );
        }
        if !(self.key_decay.is_finite() && (0.0..1.0).contains(&self.key_decay)) {
            return bad(
                "key_decay",
                format!("must lie in 0..1, got {}", self.key_decay),
            );
        }
        if self.max_keys == 0 {
            return bad("max_keys", "must be at least 1".into());
        }
        if !(self.confidence.is_finite() && self.confidence >= 0.0) {
            return bad(
                "confidence",
                format!("must be finite and >= 0, got {}", self.confidence),
            );
        }
        Ok(())
    }

    /// The config with every out-of-range setting replaced by the nearest valid value (a NaN by the
    /// default), so a balancer built from it never fails.
    pub fn clamped(&self) -> BalanceConfig {
        let default = BalanceConfig::default();
        let mut c = self.clone();
        if let BalanceMode::Reactive { sustain_windows } = &mut c.mode {
            *sustain_windows = (*sustain_windows).max(1);
        }
        let fix = |t: Threshold, d: Threshold| {
            let v = t.value();
            if !v.is_finite() {
                return d;
            }
            match t {
                Threshold::Load(_) => Threshold::Load(v.max(0.0)),
                Threshold::MeanMultiple(_) => Threshold::MeanMultiple(v.max(0.0)),
            }
        };
        c.split_load = fix(c.split_load, default.split_load);
        c.merge_load = fix(c.merge_load, default.merge_load);
        if let (Threshold::MeanMultiple(s), Threshold::MeanMultiple(m))
        | (Threshold::Load(s), Threshold::Load(m)) = (c.split_load, c.merge_load)
        {
            if m >= s {
                c.merge_load = match c.merge_load {
                    Threshold::Load(_) => Threshold::Load(s / 4.0),
                    Threshold::MeanMultiple(_) => Threshold::MeanMultiple(s / 4.0),
                };
            }
        }
        c.horizon = c.horizon.max(1);
        c.churn_budget = if c.churn_budget.is_finite() {
            c.churn_budget.clamp(0.0, 1.0)
        } else {
            default.churn_budget
        };
        c.max_shards = c.max_shards.max(1);
        c.min_shards = c.min_shards.min(c.max_shards);
        c.min_width = c.min_width.max(1);
        c.history = c.history.max(1);
        c.bucket_bits = c.bucket_bits.min(MAX_BUCKET_BITS);
        c.key_decay = if c.key_decay.is_finite() {
            c.key_decay.clamp(0.0, 0.999)
        } else {
            default.key_decay
        };
        c.max_keys = c.max_keys.max(1);
        c.confidence = if c.confidence.is_finite() {
            c.confidence.max(0.0)
        } else {
            default.confidence
        };
        c
    }

    /// Windows ahead the forecaster is asked for: `horizon` for decisions (predictive also
    /// `shadow_lead` more for shadow copies); 0 when no forecast is used.
    pub fn forecast_windows(&self) -> usize {
        match self.mode {
            BalanceMode::Predictive => self.horizon + self.shadow_lead,
            BalanceMode::Static | BalanceMode::Reactive { .. } => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_toml_style_names_parse() {
        assert!(BalanceConfig::default().validate().is_ok());
        let c: BalanceConfig = serde_json::from_str(
            r#"{"mode": "static", "split_load": {"load": 10.0}, "merge_load": {"load": 2.0}}"#,
        )
        .unwrap();
        assert_eq!(c.mode, BalanceMode::Static);
        assert_eq!(c.split_load, Threshold::Load(10.0));
        assert!(serde_json::from_str::<BalanceConfig>(r#"{"hysterisis": 1}"#).is_err());
    }

    #[test]
    fn bad_settings_are_named_and_clamped() {
        let c = BalanceConfig {
            churn_budget: 1.5,
            ..BalanceConfig::default()
        };
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("churn_budget"), "{err}");
        assert_eq!(c.clamped().churn_budget, 1.0);
        let c = BalanceConfig {
            merge_load: Threshold::MeanMultiple(3.0),
            ..BalanceConfig::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("merge_load"));
        assert!(c.clamped().validate().is_ok());
        let c = BalanceConfig {
            mode: BalanceMode::Reactive { sustain_windows: 0 },
            horizon: 0,
            history: 0,
            key_decay: f64::NAN,
            bucket_bits: 40,
            ..BalanceConfig::default()
        };
        assert!(c.validate().is_err());
        assert!(c.clamped().validate().is_ok());
    }
}
