//! Mixpanel's per-project rate limits: a sliding hourly window (and for exports a
//! one-second window) plus a cap on concurrent requests. Over the limit → 429.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::scenario::Limits;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    Query,
    Export,
}

#[derive(Default)]
struct Usage {
    started: VecDeque<Instant>,
    in_flight: u32,
}

pub struct RateLimiter {
    limits: Limits,
    usage: Arc<Mutex<HashMap<(u64, Api), Usage>>>,
}

/// A request being served; releases its concurrency slot when dropped.
pub struct Permit {
    key: (u64, Api),
    usage: Arc<Mutex<HashMap<(u64, Api), Usage>>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = usage.get_mut(&self.key) {
            entry.in_flight = entry.in_flight.saturating_sub(1);
        }
    }
}

/// Why a request was refused.
#[derive(Debug)]
pub struct Limited(pub &'static str);

impl RateLimiter {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            usage: Arc::default(),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Counts a request for `project` against `api`'s limits, or refuses it.
    pub fn acquire(&self, project: u64, api: Api) -> Result<Permit, Limited> {
        let (per_hour, per_second, concurrent) = match api {
            Api::Query => (
                self.limits.query_per_hour,
                None,
                self.limits.query_concurrent,
            ),
            Api::Export => (
                self.limits.export_per_hour,
                Some(self.limits.export_per_second),
                self.limits.export_concurrent,
            ),
        };
        let now = Instant::now();
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        let entry = usage.entry((project, api)).or_default();
        while entry
            .started
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(3600))
        {
            entry.started.pop_front();
        }
        if entry.in_flight >= concurrent {
            return Err(Limited("Too many concurrent queries"));
        }
        if entry.started.len() >= per_hour as usize {
            return Err(Limited("Query rate limit exceeded"));
        }
        if let Some(per_second) = per_second {
            let last_second = entry
                .started
                .iter()
                .rev()
                .take_while(|t| now.duration_since(**t) < Duration::from_secs(1))
                .count();
            if last_second >= per_second as usize {
                return Err(Limited("Query rate limit exceeded"));
            }
        }
        entry.started.push_back(now);
        entry.in_flight += 1;
        Ok(Permit {
            key: (project, api),
            usage: self.usage.clone(),
        })
    }

    /// Forgets all usage (tests and the demo panel).
    pub fn reset(&self) {
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        usage.retain(|_, u| u.in_flight > 0);
        for u in usage.values_mut() {
            u.started.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> RateLimiter {
        RateLimiter::new(Limits {
            query_per_hour: 3,
            query_concurrent: 2,
            export_per_hour: 10,
            export_per_second: 2,
            ..Limits::default()
        })
    }

    #[test]
    fn the_hourly_budget_is_per_project() {
        let limiter = limiter();
        for _ in 0..3 {
            drop(limiter.acquire(1, Api::Query).unwrap());
        }
        assert!(limiter.acquire(1, Api::Query).is_err());
        assert!(limiter.acquire(2, Api::Query).is_ok());
        limiter.reset();
        assert!(limiter.acquire(1, Api::Query).is_ok());
    }

    #[test]
    fn concurrency_is_capped_until_permits_drop() {
        let limiter = limiter();
        let a = limiter.acquire(1, Api::Query).unwrap();
        let _b = limiter.acquire(1, Api::Query).unwrap();
        assert!(limiter.acquire(1, Api::Query).is_err());
        drop(a);
        assert!(limiter.acquire(1, Api::Query).is_ok());
    }

    #[test]
    fn exports_are_limited_per_second() {
        let limiter = limiter();
        drop(limiter.acquire(1, Api::Export).unwrap());
        drop(limiter.acquire(1, Api::Export).unwrap());
        assert!(limiter.acquire(1, Api::Export).is_err());
    }
}
