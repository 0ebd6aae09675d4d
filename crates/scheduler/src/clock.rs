//! Time as the scheduler sees it: a [`Clock`] so convergence and crash backoff can be
//! tested with a clock that only moves when told to.

use std::sync::Mutex;
use std::time::Duration;

use crate::Time;

/// Where "now" comes from.
pub trait Clock: Send + Sync {
    fn now(&self) -> Time;
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Time {
        time::OffsetDateTime::now_utc()
    }
}

/// A clock that stands still until [`ManualClock::advance`] moves it.
#[derive(Debug)]
pub struct ManualClock(Mutex<Time>);

impl ManualClock {
    pub fn new(start: Time) -> ManualClock {
        ManualClock(Mutex::new(start))
    }

    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().expect("clock lock");
        *t += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Time {
        *self.0.lock().expect("clock lock")
    }
}
