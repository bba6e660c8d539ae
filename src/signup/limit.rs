//! How often one client, and one address, may ask for a confirmation
//! message: a token bucket per key, in memory (per `serve` process), with a
//! bounded number of keys so that a flood of distinct clients costs bounded
//! memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys remembered at most; past this the ones idle longest are forgotten
/// (a forgotten key starts with a full bucket again).
pub const MAX_KEYS: usize = 100_000;

/// `burst` requests at once, then one more every `every`.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub burst: u32,
    pub every: Duration,
}

/// One client (by IP address): ten sign-ups in a row, then one every three
/// minutes. A household or an office behind one address stays well within
/// it; a script does not.
pub const PER_CLIENT: Rate = Rate {
    burst: 10,
    every: Duration::from_secs(180),
};

/// One address: two confirmation messages (the first, and one for a
/// reader who lost it), then one every two hours, so that nobody can use
/// the page to fill someone's mailbox.
pub const PER_ADDRESS: Rate = Rate {
    burst: 2,
    every: Duration::from_secs(2 * 3600),
};

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug)]
pub struct Limiter {
    rate: Rate,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Limiter {
    pub fn new(rate: Rate) -> Limiter {
        Limiter {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request's token for `key` at `now`; false when it has none
    /// left.
    pub fn allow(&self, key: &str, now: Instant) -> bool {
        let Ok(mut buckets) = self.buckets.lock() else {
            return false;
        };
        let burst = f64::from(self.rate.burst);
        let refill = |b: &Bucket| {
            let earned =
                now.saturating_duration_since(b.at).as_secs_f64() / self.rate.every.as_secs_f64();
            (b.tokens + earned).min(burst)
        };
        if !buckets.contains_key(key) && buckets.len() >= MAX_KEYS {
            // The full buckets say nothing a fresh one would not; past them,
            // the tenth idle longest goes, so that this runs once per
            // MAX_KEYS / 10 new keys, not for each.
            buckets.retain(|_, b| refill(b) < burst);
            if buckets.len() >= MAX_KEYS * 9 / 10 {
                let mut ages: Vec<Instant> = buckets.values().map(|b| b.at).collect();
                let cut = ages.len() / 10;
                let (_, nth, _) = ages.select_nth_unstable(cut);
                let nth = *nth;
                buckets.retain(|_, b| b.at > nth);
            }
        }
        let b = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let tokens = refill(b);
        *b = Bucket { tokens, at: now };
        if tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_one_per_interval_and_keys_are_apart() {
        let l = Limiter::new(Rate {
            burst: 3,
            every: Duration::from_secs(60),
        });
        let t0 = Instant::now();
        assert!((0..3).all(|_| l.allow("a", t0)));
        assert!(!l.allow("a", t0));
        assert!(l.allow("b", t0));
        assert!(!l.allow("a", t0 + Duration::from_secs(59)));
        assert!(l.allow("a", t0 + Duration::from_secs(61)));
        assert!(!l.allow("a", t0 + Duration::from_secs(62)));
        // Never more than the burst, however long it was idle.
        let later = t0 + Duration::from_secs(3600);
        assert!((0..3).all(|_| l.allow("a", later)));
        assert!(!l.allow("a", later));
    }

    #[test]
    fn a_flood_of_keys_stays_bounded_and_keeps_the_recent_ones() {
        let l = Limiter::new(Rate {
            burst: 1,
            // Nothing refills within the test.
            every: Duration::from_secs(1 << 40),
        });
        let t0 = Instant::now();
        assert!(l.allow("victim", t0 + Duration::from_secs(MAX_KEYS as u64 + 10)));
        for i in 0..(MAX_KEYS + MAX_KEYS / 2) {
            l.allow(&format!("k{i}"), t0 + Duration::from_secs(i as u64));
        }
        assert!(l.buckets.lock().unwrap().len() <= MAX_KEYS);
        // The most recent key is still remembered as spent.
        assert!(!l.allow("victim", t0 + Duration::from_secs(MAX_KEYS as u64 * 2)));
    }
}
