//! The bandwidth throttle of copies: a rate in bytes per second that can be changed while
//! copies run, and the pacing that follows it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A shared copy rate in bytes per second; `0` means unlimited. Clones share the rate, so a
/// handle kept by an operator changes the pace of running copies within one pacing step.
///
/// ```
/// use shardcast_sinks::migration::Throttle;
/// let throttle = Throttle::new(1_000_000);
/// let shared = throttle.clone();
/// shared.set(250_000);
/// assert_eq!(throttle.rate(), 250_000);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Throttle {
    rate: Arc<AtomicU64>,
}

impl Throttle {
    /// A throttle at `bytes_per_sec` (`0`: unlimited).
    pub fn new(bytes_per_sec: u64) -> Self {
        Throttle {
            rate: Arc::new(AtomicU64::new(bytes_per_sec)),
        }
    }

    /// Changes the rate of every copy using this throttle.
    pub fn set(&self, bytes_per_sec: u64) {
        self.rate.store(bytes_per_sec, Ordering::Relaxed);
    }

    /// The current rate (`0`: unlimited).
    pub fn rate(&self) -> u64 {
        self.rate.load(Ordering::Relaxed)
    }
}

/// Longest single sleep, so that a rate change or a stop request takes effect quickly.
const STEP: Duration = Duration::from_millis(20);

/// Paces one copy by a token bucket: each copied batch is paid for after the fact (the balance
/// may go negative), and the next batch waits until the balance is back to zero. The bucket
/// holds at most 50 ms of credit, so an idle spell does not allow a burst.
pub(crate) struct Pacer {
    throttle: Throttle,
    balance: f64,
    refilled: Instant,
}

impl Pacer {
    pub(crate) fn new(throttle: Throttle) -> Self {
        Pacer {
            throttle,
            balance: 0.0,
            refilled: Instant::now(),
        }
    }

    fn refill(&mut self) -> u64 {
        let rate = self.throttle.rate();
        let now = Instant::now();
        if rate == 0 {
            self.balance = 0.0;
        } else {
            let earned = rate as f64 * now.duration_since(self.refilled).as_secs_f64();
            self.balance = (self.balance + earned).min(rate as f64 * 0.05);
        }
        self.refilled = now;
        rate
    }

    /// Waits until the next batch may go; returns early (false) if `stop` is set.
    pub(crate) fn wait(&mut self, stop: &AtomicBool) -> bool {
        loop {
            if stop.load(Ordering::Relaxed) {
                return false;
            }
            let rate = self.refill();
            if rate == 0 || self.balance >= 0.0 {
                return true;
            }
            let needed = Duration::from_secs_f64(-self.balance / rate as f64);
            std::thread::sleep(needed.min(STEP));
        }
    }

    /// Pays for `bytes` just copied.
    pub(crate) fn pay(&mut self, bytes: u64) {
        if self.refill() != 0 {
            self.balance -= bytes as f64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_follows_the_rate_and_its_changes() {
        let throttle = Throttle::new(100_000);
        let mut pacer = Pacer::new(throttle.clone());
        let stop = AtomicBool::new(false);
        let start = Instant::now();
        // 20 batches of 1,000 bytes at 100 kB/s: about 0.2 s.
        for _ in 0..20 {
            assert!(pacer.wait(&stop));
            pacer.pay(1_000);
        }
        let slow = start.elapsed();
        assert!(slow >= Duration::from_millis(150), "too fast: {slow:?}");
        throttle.set(0);
        let start = Instant::now();
        for _ in 0..20 {
            assert!(pacer.wait(&stop));
            pacer.pay(1_000);
        }
        assert!(start.elapsed() < slow, "unlimited was not faster");
        throttle.set(1);
        pacer.pay(1_000_000);
        stop.store(true, Ordering::Relaxed);
        assert!(!pacer.wait(&stop), "a stop request must end the wait");
    }
}
