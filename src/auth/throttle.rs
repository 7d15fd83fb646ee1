//! Sliding-window limits kept in this instance's memory: login failures per account and per client
//! address, and mutations per user.
//!
//! Per instance on purpose: with N instances behind a load balancer an attacker gets at most N times the
//! budget, which still turns an online password guess into hopeless arithmetic, and no Redis round trip
//! sits on the login path.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Allows at most `limit` hits per key within any `period`.
pub struct SlidingWindow {
    limit: usize,
    period: Duration,
    hits: Mutex<HashMap<String, VecDeque<Instant>>>,
}

/// Past this many keys, a record sweeps out keys whose hits have all expired.
const SWEEP_ABOVE_KEYS: usize = 10_000;

impl SlidingWindow {
    pub fn new(limit: usize, period: Duration) -> Self {
        Self {
            limit,
            period,
            hits: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `key` has used up its budget (without recording anything).
    pub fn is_exhausted(&self, key: &str) -> bool {
        let now = Instant::now();
        let mut hits = self.lock();
        match hits.get_mut(key) {
            Some(window) => {
                Self::expire(window, now, self.period);
                window.len() >= self.limit
            }
            None => false,
        }
    }

    /// Records a hit for `key`.
    pub fn record(&self, key: &str) {
        let now = Instant::now();
        let mut hits = self.lock();
        if hits.len() > SWEEP_ABOVE_KEYS {
            let period = self.period;
            hits.retain(|_, window| {
                Self::expire(window, now, period);
                !window.is_empty()
            });
        }
        let window = hits.entry(key.to_owned()).or_default();
        Self::expire(window, now, self.period);
        window.push_back(now);
        // Only the newest `limit` hits can ever matter.
        while window.len() > self.limit {
            window.pop_front();
        }
    }

    /// Records a hit unless the budget is used up; returns whether the hit was allowed.
    pub fn try_acquire(&self, key: &str) -> bool {
        if self.is_exhausted(key) {
            return false;
        }
        self.record(key);
        true
    }

    pub fn clear(&self, key: &str) {
        self.lock().remove(key);
    }

    fn expire(window: &mut VecDeque<Instant>, now: Instant, period: Duration) {
        while window
            .front()
            .is_some_and(|oldest| now.duration_since(*oldest) >= period)
        {
            window.pop_front();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Instant>>> {
        // A panic while holding the lock cannot leave the map inconsistent: keep using it.
        self.hits
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The limits the API enforces.
pub struct Throttles {
    /// Failed logins per account (normalised email).
    pub login_per_account: SlidingWindow,
    /// Failed logins per client address.
    pub login_per_address: SlidingWindow,
    /// Mutations per user.
    pub mutations_per_user: SlidingWindow,
    /// Waiting-room joins per user.
    pub queue_joins_per_user: SlidingWindow,
}

impl Throttles {
    pub fn new(mutations_per_minute: usize) -> Self {
        let quarter_hour = Duration::from_secs(15 * 60);
        Self {
            login_per_account: SlidingWindow::new(5, quarter_hour),
            login_per_address: SlidingWindow::new(20, quarter_hour),
            mutations_per_user: SlidingWindow::new(mutations_per_minute, Duration::from_secs(60)),
            queue_joins_per_user: SlidingWindow::new(10, Duration::from_secs(60)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_exhausted_after_its_limit_and_others_are_not() {
        let window = SlidingWindow::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(!window.is_exhausted("a"));
            window.record("a");
        }
        assert!(window.is_exhausted("a"));
        assert!(!window.is_exhausted("b"));
        window.clear("a");
        assert!(!window.is_exhausted("a"));
    }

    #[test]
    fn hits_older_than_the_period_no_longer_count() {
        let window = SlidingWindow::new(1, Duration::ZERO);
        window.record("a");
        assert!(!window.is_exhausted("a"));
    }

    #[test]
    fn try_acquire_stops_at_the_limit() {
        let window = SlidingWindow::new(2, Duration::from_secs(60));
        assert!(window.try_acquire("u"));
        assert!(window.try_acquire("u"));
        assert!(!window.try_acquire("u"));
    }
}
