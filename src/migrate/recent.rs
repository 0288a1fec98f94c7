//! Sign-in outcomes over the last hour, in memory: a ring of 60 per-minute buckets of counts by
//! outcome label. Each process counts its own sign-ins (no shared store), so with several
//! replicas each reports only the sign-ins it handled; Prometheus sums them across replicas.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use super::outcome::Outcome;

/// Minutes in the window, one bucket each.
pub const WINDOW_MINUTES: usize = 60;
const LABELS: usize = Outcome::LABELS.len();

#[derive(Clone, Copy)]
struct Bucket {
    /// The minute (since the ring's origin) this bucket counts; `u64::MAX` when never used.
    minute: u64,
    counts: [u64; LABELS],
}

const EMPTY: Bucket = Bucket {
    minute: u64::MAX,
    counts: [0; LABELS],
};

/// Per-minute counts of sign-in outcomes over the trailing hour.
pub struct RecentOutcomes {
    origin: Instant,
    ring: Mutex<[Bucket; WINDOW_MINUTES]>,
}

impl Default for RecentOutcomes {
    fn default() -> Self {
        Self::new()
    }
}

impl RecentOutcomes {
    /// An empty ring whose minutes count from now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
            ring: Mutex::new([EMPTY; WINDOW_MINUTES]),
        }
    }

    fn minute_now(&self) -> u64 {
        self.origin.elapsed().as_secs() / 60
    }

    /// Counts one outcome in the current minute.
    pub fn record(&self, outcome: Outcome) {
        self.record_at(outcome, self.minute_now());
    }

    fn record_at(&self, outcome: Outcome, minute: u64) {
        let label = outcome.as_str();
        let Some(index) = Outcome::LABELS.iter().position(|l| *l == label) else {
            return;
        };
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        let bucket = &mut ring[(minute % WINDOW_MINUTES as u64) as usize];
        if bucket.minute != minute {
            *bucket = Bucket {
                minute,
                counts: [0; LABELS],
            };
        }
        bucket.counts[index] = bucket.counts[index].saturating_add(1);
    }

    /// Sign-ins by outcome label over the current minute and the 59 before it; every label is
    /// present (0 when none).
    pub fn last_hour(&self) -> BTreeMap<&'static str, u64> {
        self.last_hour_at(self.minute_now())
    }

    fn last_hour_at(&self, now: u64) -> BTreeMap<&'static str, u64> {
        let ring = *self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        let oldest = now.saturating_sub(WINDOW_MINUTES as u64 - 1);
        let mut totals = [0u64; LABELS];
        for bucket in ring
            .iter()
            .filter(|b| b.minute != u64::MAX && (oldest..=now).contains(&b.minute))
        {
            for (total, n) in totals.iter_mut().zip(bucket.counts) {
                *total = total.saturating_add(n);
            }
        }
        Outcome::LABELS.into_iter().zip(totals).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::Stage;

    #[test]
    fn counts_cover_sixty_minutes_and_old_buckets_are_reused() {
        let r = RecentOutcomes::new();
        r.record_at(Outcome::Migrated, 0);
        r.record_at(Outcome::Migrated, 0);
        r.record_at(Outcome::WrongPassword, 30);
        r.record_at(Outcome::Fallback(Stage::Ledger), 59);
        let at = r.last_hour_at(59);
        assert_eq!(at["migrated"], 2);
        assert_eq!(at["wrong_password"], 1);
        assert_eq!(at["fallback"], 1);
        assert_eq!(at.len(), Outcome::LABELS.len());
        // Minute 60 leaves minute 0 out of the window, then takes its bucket.
        assert_eq!(r.last_hour_at(60)["migrated"], 0);
        r.record_at(Outcome::Routed, 60);
        let at = r.last_hour_at(60);
        assert_eq!(
            (at["migrated"], at["routed"], at["wrong_password"]),
            (0, 1, 1)
        );
        // Two hours on, nothing is left.
        assert!(r.last_hour_at(200).values().all(|n| *n == 0));
    }
}
