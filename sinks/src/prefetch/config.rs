//! Settings of a prefetch executor and their validation.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::{RetryPolicy, SinkError};

/// Where the executor copies from and to, and how hard it tries.
#[derive(Clone, Debug)]
pub struct PrefetchExecutorConfig {
    /// Redis URL of the primary store, e.g. `redis://10.0.0.1:6379/0`.
    pub primary: String,
    /// Region name -> Redis URL of that region's cache. One worker per region.
    pub regions: BTreeMap<String, String>,
    /// Time to live of every copy written to a regional cache (at least 1 ms).
    pub ttl: Duration,
    /// Prefix of data keys in every store: order key `K` lives at `PREFIX` + `K` (e.g. `data:`).
    /// The landing record of a region is the hash `PREFIX` + `prefetch:landed`.
    pub key_prefix: String,
    /// Most orders waiting per region; beyond it the lowest-priority order is shed.
    pub queue_capacity: usize,
    /// Back-off between attempts while a store is unreachable; an order that keeps failing for
    /// `give_up_after` is abandoned and counted.
    pub retry: RetryPolicy,
}

/// A config that passed [`PrefetchExecutorConfig::validate`], with its URLs parsed.
pub(crate) struct ValidConfig {
    pub(crate) primary: redis::Client,
    pub(crate) regions: Vec<(String, redis::Client)>,
    pub(crate) ttl_ms: u64,
}

impl PrefetchExecutorConfig {
    /// Checks every setting and parses every URL without connecting, so a store that is down at
    /// start is waited for like any later outage.
    pub(crate) fn validate(&self) -> Result<ValidConfig, SinkError> {
        let invalid = |what: String| Err(SinkError::Invalid(format!("prefetch executor: {what}")));
        if self.regions.is_empty() {
            return invalid("no regions configured".into());
        }
        if self.queue_capacity == 0 {
            return invalid("queue_capacity must be at least 1".into());
        }
        let ttl_ms = match u64::try_from(self.ttl.as_millis()) {
            Ok(ms) if ms >= 1 => ms,
            _ => {
                return invalid(format!(
                    "ttl {:?} is not between 1 ms and u64::MAX ms",
                    self.ttl
                ))
            }
        };
        // A zero delay would turn an outage into a busy loop against the dead server.
        if self.retry.initial_delay.is_zero() || self.retry.max_delay.is_zero() {
            return invalid("retry delays must be positive".into());
        }
        let parse = |what: &str, url: &str| {
            redis::Client::open(url)
                .map_err(|e| SinkError::redis(format!("prefetch executor: URL of {what}"), e))
        };
        let primary = parse("the primary", &self.primary)?;
        let regions = self
            .regions
            .iter()
            .map(|(name, url)| Ok((name.clone(), parse(&format!("region {name:?}"), url)?)))
            .collect::<Result<_, SinkError>>()?;
        Ok(ValidConfig {
            primary,
            regions,
            ttl_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> PrefetchExecutorConfig {
        PrefetchExecutorConfig {
            primary: "redis://127.0.0.1:1/".into(),
            regions: BTreeMap::from([("eu".to_string(), "redis://127.0.0.1:2/".to_string())]),
            ttl: Duration::from_secs(60),
            key_prefix: "data:".into(),
            queue_capacity: 10,
            retry: RetryPolicy::default(),
        }
    }

    fn rejected(config: PrefetchExecutorConfig, needle: &str) {
        match config.validate() {
            Ok(_) => panic!("config should be rejected for {needle}"),
            Err(e) => assert!(e.to_string().contains(needle), "{e} lacks {needle:?}"),
        }
    }

    #[test]
    fn accepts_a_sane_config() {
        let valid = config().validate().expect("valid config");
        assert_eq!(valid.ttl_ms, 60_000);
        assert_eq!(valid.regions.len(), 1);
    }

    #[test]
    fn rejects_bad_settings() {
        rejected(
            PrefetchExecutorConfig {
                regions: BTreeMap::new(),
                ..config()
            },
            "no regions",
        );
        rejected(
            PrefetchExecutorConfig {
                queue_capacity: 0,
                ..config()
            },
            "queue_capacity",
        );
        rejected(
            PrefetchExecutorConfig {
                ttl: Duration::from_micros(999),
                ..config()
            },
            "ttl",
        );
        rejected(
            PrefetchExecutorConfig {
                retry: RetryPolicy {
                    initial_delay: Duration::ZERO,
                    ..RetryPolicy::default()
                },
                ..config()
            },
            "retry delays",
        );
        rejected(
            PrefetchExecutorConfig {
                primary: "http://nope".into(),
                ..config()
            },
            "the primary",
        );
        let mut bad_region = config();
        bad_region.regions.insert("us".into(), "not a url".into());
        rejected(bad_region, "region \"us\"");
    }
}
