//! The memory budget shared by every sign-in body held in memory. Each sign-in body is bounded
//! by `signin.max_body_bytes`, but thousands held at once are not (1,500 held 64 KiB sign-ins
//! took a process from 34 MB to 204 MB): a body is read only against reserved room, in KiB
//! units, and a request that finds no room within `signin.buffer_wait` is answered 503.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::metrics::SigninMetrics;

const UNIT: usize = 1024;

/// The shared budget.
#[derive(Clone)]
pub struct BodyBudget {
    room: Arc<Semaphore>,
    units: u32,
    wait: Duration,
    metrics: SigninMetrics,
}

/// Room reserved by one request; returned when it is dropped.
pub struct Reservation {
    budget: BodyBudget,
    permit: Option<OwnedSemaphorePermit>,
    units: u32,
}

/// The budget stayed full for the whole wait.
#[derive(Debug)]
pub struct BudgetFull;

impl BodyBudget {
    /// A budget of `bytes`, with requests waiting up to `wait` for room.
    pub fn new(bytes: usize, wait: Duration, metrics: SigninMetrics) -> Self {
        let units = u32::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .max(1);
        Self {
            room: Arc::new(Semaphore::new(units as usize)),
            units,
            wait,
            metrics,
        }
    }

    /// An empty reservation, grown as the body arrives.
    pub fn reservation(&self) -> Reservation {
        Reservation {
            budget: self.clone(),
            permit: None,
            units: 0,
        }
    }
}

impl Reservation {
    /// Makes sure `bytes` in all are reserved, waiting up to the budget's wait for room.
    pub async fn grow_to(&mut self, bytes: usize) -> Result<(), BudgetFull> {
        let wanted = u32::try_from(bytes.div_ceil(UNIT)).unwrap_or(u32::MAX);
        if wanted <= self.units {
            return Ok(());
        }
        let budget = &self.budget;
        // A body larger than the whole budget could never be read.
        if wanted > budget.units {
            budget.metrics.budget_exhausted();
            return Err(BudgetFull);
        }
        let more = wanted - self.units;
        let acquire = budget.room.clone().acquire_many_owned(more);
        let permit = match tokio::time::timeout(budget.wait, acquire).await {
            Ok(Ok(permit)) => permit,
            _ => {
                budget.metrics.budget_exhausted();
                return Err(BudgetFull);
            }
        };
        match &mut self.permit {
            Some(held) => held.merge(permit),
            None => self.permit = Some(permit),
        }
        budget
            .metrics
            .buffered_bytes()
            .add(i64::from(more) * UNIT as i64);
        self.units = wanted;
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget
            .metrics
            .buffered_bytes()
            .sub(i64::from(self.units) * UNIT as i64);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn room_is_reserved_waited_for_and_returned() {
        let metrics = SigninMetrics::register(&prometheus::Registry::new()).unwrap();
        let budget = BodyBudget::new(4 * UNIT, Duration::from_millis(20), metrics.clone());
        let mut a = budget.reservation();
        a.grow_to(3 * UNIT).await.unwrap();
        a.grow_to(10).await.unwrap();
        assert_eq!(metrics.buffered_bytes().get(), 3 * UNIT as i64);
        let mut b = budget.reservation();
        assert!(b.grow_to(2 * UNIT).await.is_err());
        assert!(budget.reservation().grow_to(5 * UNIT).await.is_err());
        drop(a);
        b.grow_to(2 * UNIT).await.unwrap();
        assert_eq!(metrics.buffered_bytes().get(), 2 * UNIT as i64);
    }
}
