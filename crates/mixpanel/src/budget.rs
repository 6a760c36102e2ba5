//! Mixpanel's Query API allows each project 60 queries an hour and 5 at once (reference §8),
//! shared with everything else the customer runs against that project. The client keeps
//! well inside both on its own side: a script refreshing in a loop spent the hour's budget
//! in a minute, and every tool of the customer's then got 429s for the rest of the hour.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::MixpanelError;

/// Queries to one Mixpanel project in flight at once (Mixpanel refuses a sixth).
pub const QUERIES_AT_ONCE: usize = 5;
/// Queries to one Mixpanel project that may go at once after a quiet spell; then one every
/// [`QUERY_EVERY`]. At most 40 in any hour, which leaves the customer's own tools 20.
pub const QUERY_BURST: u32 = 10;
pub const QUERY_EVERY: Duration = Duration::from_secs(120);

/// Each Mixpanel project's Query API budget, as this process spends it.
pub(crate) struct QueryBudget {
    pace: DefaultKeyedRateLimiter<String>,
    at_once: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl std::fmt::Debug for QueryBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QueryBudget")
    }
}

impl Default for QueryBudget {
    fn default() -> Self {
        let quota = Quota::with_period(QUERY_EVERY)
            .expect("a period above zero")
            .allow_burst(NonZeroU32::new(QUERY_BURST).expect("a burst above zero"));
        Self {
            pace: DefaultKeyedRateLimiter::keyed(quota),
            at_once: Mutex::default(),
        }
    }
}

impl QueryBudget {
    /// Spends `queries` of `project`'s budget at once, or none: a refresh's two reads are
    /// paid together, so that one refused halfway does not spend the first for nothing
    /// (and a caller that waits the `Retry-After` it was given gets through). A budget spent
    /// answers as Mixpanel's own limit would, with the wait until that many may go.
    pub(crate) fn spend(&self, project: &str, queries: u32) -> Result<(), MixpanelError> {
        let n = NonZeroU32::new(queries.max(1)).expect("at least one");
        let not_until = match self.pace.check_key_n(&project.to_owned(), n) {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(not_until)) => not_until,
            // More than the burst: never, as Mixpanel's own 60 an hour would say.
            Err(_) => return Err(MixpanelError::RateLimited { retry_after: None }),
        };
        let wait = not_until.wait_time_from(self.pace.clock().now());
        tracing::info!(
            wait_secs = wait.as_secs(),
            "Mixpanel's query budget for this project is spent for now"
        );
        Err(MixpanelError::RateLimited {
            retry_after: Some(wait),
        })
    }

    /// Waits for one of `project`'s places, held for as long as the query runs.
    pub(crate) async fn place(&self, project: &str) -> OwnedSemaphorePermit {
        let places = {
            let mut at_once = self.at_once.lock().unwrap_or_else(|e| e.into_inner());
            // Projects no query is using any more are forgotten as others come.
            at_once.retain(|_, places| Arc::strong_count(places) > 1);
            at_once
                .entry(project.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(QUERIES_AT_ONCE)))
                .clone()
        };
        places.acquire_owned().await.expect("never closed")
    }
}
