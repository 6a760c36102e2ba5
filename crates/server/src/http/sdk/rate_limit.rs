//! Request budgets: each public SDK key may make `sdk_requests_per_minute` requests at once,
//! each project `api_requests_per_minute` REST requests, and a budget refills evenly over the
//! minute (GCRA, from `governor`); beyond it, `429 rate_limited` with `Retry-After`. Counted in
//! memory per server process, one timestamp per key however high the limit.

use std::num::NonZeroU32;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONNECTION};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};
use uj_domain::keys::is_public_key_shaped;

use crate::http::extract::{discard_body, MAX_JSON_BODY};
use crate::http::ApiError;
use crate::state::AppState;

/// Keys tracked before those with a full budget again are forgotten.
const MAX_KEYS: usize = 100_000;
/// How often the keys are looked through at most, once past [`MAX_KEYS`]: keys that all
/// still count (a low limit keeps a key for up to a minute) were looked through again by
/// every request, each a walk of 100,000 entries.
const SCAN_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

pub struct RateLimiter {
    limiter: DefaultKeyedRateLimiter<String>,
    /// When the keys were last looked through, and how often they may be.
    last_scan: std::sync::Mutex<Option<std::time::Instant>>,
    scan_every: std::time::Duration,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        Self::scanning_every(per_minute, SCAN_EVERY)
    }

    fn scanning_every(per_minute: u32, scan_every: std::time::Duration) -> Self {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(Quota::per_minute(per_minute)),
            last_scan: std::sync::Mutex::new(None),
            scan_every,
        }
    }

    /// Forgets the keys with a full budget again, once per `scan_every` at most (the keys
    /// tracked meanwhile stay bounded by the requests made in that time).
    fn forget_whole_keys(&self) {
        let now = std::time::Instant::now();
        {
            let mut last = self.last_scan.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|at| now.duration_since(at) < self.scan_every) {
                return;
            }
            *last = Some(now);
        }
        self.limiter.retain_recent();
    }

    /// `Err(wait)` when the public key `key` has used its budget. Only keys shaped like
    /// public keys are counted: anything else is refused by authentication without a lookup,
    /// and counting it would let a client fill memory with long junk tokens.
    fn check_public_key(&self, key: &str) -> Result<(), std::time::Duration> {
        match is_public_key_shaped(key) {
            true => self.check(key),
            false => Ok(()),
        }
    }

    /// `Err(wait)` when `key` (one the server vouches for) has used its budget.
    pub fn check(&self, key: &str) -> Result<(), std::time::Duration> {
        if self.limiter.len() >= MAX_KEYS {
            self.forget_whole_keys();
        }
        self.limiter
            .check_key(&key.to_owned())
            .map_err(|not_until| not_until.wait_time_from(self.limiter.clock().now()))
    }
}

/// Each SDK request: refused beyond its key's budget, and answered within
/// `sdk_timeout` (a database that stops answering would otherwise hold every app's call for
/// the whole outage). One layer for both: each layer costs every request a little.
pub async fn per_key(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let key = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::http::auth::bearer_token)
        .unwrap_or_default();
    if let Err(wait) = state.sdk_limiter.check_public_key(key) {
        let mut response = ApiError::rate_limited(wait, "this key").into_response();
        // The body is read past first (up to the SDK's limit, within the deadline): a client
        // that sends it after its headers then reads this answer on a connection still
        // usable, instead of a reset.
        let (headers, body) = {
            let (parts, body) = request.into_parts();
            (parts.headers, body)
        };
        let read = tokio::time::timeout(
            state.sdk_timeout,
            discard_body(&headers, body, MAX_JSON_BODY, 0),
        )
        .await;
        if !matches!(read, Ok((_, true))) {
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        return response;
    }
    match tokio::time::timeout(state.sdk_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            ApiError::unavailable(anyhow::anyhow!("no answer within {:?}", state.sdk_timeout))
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key shaped like a public key, numbered.
    fn key(n: usize) -> String {
        format!("uj_pk_{n:040}")
    }

    #[test]
    fn each_key_has_its_own_budget_refilled_over_the_minute() {
        let limiter = RateLimiter::new(3);
        for _ in 0..3 {
            assert!(limiter.check(&key(1)).is_ok());
        }
        // Three a minute: the next request is one twenty seconds from the first.
        let wait = limiter.check(&key(1)).unwrap_err();
        assert!(
            wait <= std::time::Duration::from_secs(20) && wait > std::time::Duration::from_secs(15),
            "{wait:?}"
        );
        assert!(limiter.check(&key(2)).is_ok());
    }

    #[test]
    fn keys_with_a_full_budget_are_forgotten_past_the_cap() {
        let limiter = RateLimiter::new(1_000_000);
        for i in 0..MAX_KEYS {
            limiter.check(&key(i)).unwrap();
        }
        assert_eq!(limiter.limiter.len(), MAX_KEYS);
        // A million a minute refills a request in 60 µs: after this, every key is whole again.
        std::thread::sleep(std::time::Duration::from_millis(5));
        limiter.check(&key(MAX_KEYS)).unwrap();
        assert_eq!(limiter.limiter.len(), 1);
    }

    #[test]
    fn the_keys_are_looked_through_once_per_interval_at_most() {
        let limiter = RateLimiter::scanning_every(1_000_000, std::time::Duration::from_secs(3600));
        let fill = |from: usize| {
            for i in from..from + MAX_KEYS {
                limiter.check(&key(i)).unwrap();
            }
        };
        fill(0);
        std::thread::sleep(std::time::Duration::from_millis(5));
        limiter.check(&key(MAX_KEYS)).unwrap();
        assert_eq!(limiter.limiter.len(), 1, "looked through");
        // Past the cap again within the interval: not looked through (each request walked
        // every key), though the keys are whole again.
        fill(MAX_KEYS + 1);
        std::thread::sleep(std::time::Duration::from_millis(5));
        limiter.check(&key(3 * MAX_KEYS)).unwrap();
        assert_eq!(limiter.limiter.len(), MAX_KEYS + 2);
    }

    #[test]
    fn tokens_that_cannot_be_public_keys_are_not_tracked() {
        let limiter = RateLimiter::new(1);
        let junk = "x".repeat(100_000);
        for token in [junk.as_str(), "uj_pk_short", "uj_live_secret", ""] {
            for _ in 0..3 {
                assert!(limiter.check_public_key(token).is_ok());
            }
        }
        assert_eq!(limiter.limiter.len(), 0);
    }
}
