//! Every setting of the next-access predictor, in one serde struct with defaults tuned on the reference
//! traces.

use serde::{Deserialize, Serialize};

use crate::ReplayError;

/// How much a region may prefetch per epoch, in the units of its cache (objects, or bytes). Spending
/// is paced: a fraction f into an epoch, at most f of its budget has been spent.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Budget {
    /// No limit besides the per-request cap.
    Unlimited,
    /// At most this many objects (object caches) or bytes (byte caches) per region per epoch.
    PerEpoch(u64),
    /// At most this share of what the region's requests asked for in the previous epoch (objects or
    /// bytes): the prefetch traffic follows the demand traffic, whatever the trace's rate.
    DemandShare(f64),
}

impl Default for Budget {
    /// [`Budget::Unlimited`]: on the reference traces every binding budget lowered the hit ratio
    /// without raising accuracy, since orders come in request order, not in priority order over the
    /// epoch.
    fn default() -> Self {
        Budget::Unlimited
    }
}

/// The settings of [`NextAccessPredictor`](crate::NextAccessPredictor).
///
/// Times are event time in milliseconds. For traces that only give the order of requests (their `ts`
/// is the request index in ms) use [`PredictorConfig::order_only`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PredictorConfig {
    /// Length of an epoch: the model changes only at epoch boundaries.
    pub tick_ms: u64,
    /// The model used during epoch t counts the requests of epochs t-W..t-1, W = `window_epochs`.
    pub window_epochs: u64,
    /// Two requests of a client further apart than this are not a transition.
    pub max_gap_ms: u64,
    /// Y follows X when Y is among the client's next `lookahead` requests after X (at least 1).
    pub lookahead: usize,
    /// Cross-client co-access: Y co-occurs with X when another client requests Y within the next
    /// `co_access_window` requests of X's region; 0 turns the table off.
    pub co_access_window: usize,
    /// Also learn (W, X) -> Y from a client's last two requests.
    pub second_order: bool,
    /// For integer keys, learn the offsets d of "after X comes X + d" (any X); 0 turns it off.
    pub max_stride: u32,
    /// Learn strides per request size as well as per region (a block trace's next block depends on
    /// how many blocks the request covered).
    pub stride_by_size: bool,
    /// Successors (or strides) kept per context, the most frequent first.
    pub top_k: usize,
    /// Pseudo-count of the support shrinkage: a context seen n times in the window has its
    /// probabilities multiplied by n / (n + prior).
    pub prior: f64,
    /// A successor seen fewer times than this in the window is not predicted.
    pub min_count: u32,
    /// Orders need at least this confidence (probability shrunk by support).
    pub min_confidence: f64,
    /// At most this many orders per request.
    pub max_orders: usize,
    /// Per region and epoch.
    pub budget: Budget,
}

impl Default for PredictorConfig {
    /// Settings for traces with real timestamps: one-minute epochs over a one-day window, transitions
    /// within a minute.
    fn default() -> Self {
        PredictorConfig {
            tick_ms: 60_000,
            window_epochs: 1440,
            max_gap_ms: 60_000,
            lookahead: 4,
            co_access_window: 8,
            second_order: false,
            max_stride: 1024,
            stride_by_size: true,
            top_k: 4,
            prior: 1.0,
            min_count: 1,
            min_confidence: 0.1,
            max_orders: 4,
            budget: Budget::Unlimited,
        }
    }
}

impl PredictorConfig {
    /// Settings for traces that only give request order (`ts` = request index in ms): an epoch is 1,000
    /// requests, the window 1,000 epochs (a million requests), and a transition spans at most 1,000
    /// requests.
    pub fn order_only() -> Self {
        PredictorConfig {
            tick_ms: 1_000,
            window_epochs: 1_000,
            max_gap_ms: 1_000,
            ..Self::default()
        }
    }

    /// Checks every setting is in its range.
    pub fn validate(&self) -> Result<(), ReplayError> {
        let bad = |field, reason: &str| {
            Err(ReplayError::InvalidConfig {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.tick_ms == 0 {
            return bad("tick_ms", "must be at least 1");
        }
        if self.window_epochs == 0 {
            return bad("window_epochs", "must be at least 1");
        }
        if self.lookahead == 0 {
            return bad("lookahead", "must be at least 1");
        }
        if !(self.prior.is_finite() && self.prior >= 0.0) {
            return bad("prior", "must be a finite number >= 0");
        }
        if !(0.0..=1.0).contains(&self.min_confidence) {
            return bad("min_confidence", "must be within [0, 1]");
        }
        if let Budget::DemandShare(share) = self.budget {
            if !(share.is_finite() && share >= 0.0) {
                return bad("budget", "a demand share must be a finite number >= 0");
            }
        }
        Ok(())
    }
}
