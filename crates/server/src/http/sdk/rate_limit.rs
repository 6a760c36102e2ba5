//! A per-key request budget for the SDK API: each public key gets `sdk_requests_per_minute`
//! requests in any sliding minute; beyond that, `429 rate_limited` with `Retry-After`.
//! Counted in memory per server process.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::http::ApiError;
use crate::state::AppState;

const WINDOW: Duration = Duration::from_secs(60);
/// Keys tracked at most; idle ones are swept as the map grows.
const MAX_KEYS: usize = 100_000;

#[derive(Default)]
pub struct SdkRateLimiter {
    windows: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl SdkRateLimiter {
    /// `Err(wait)` when `key` has used its budget.
    fn check(&self, key: &str, per_minute: u32) -> Result<(), Duration> {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= MAX_KEYS {
            windows.retain(|_, w| w.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
        }
        let window = windows.entry(key.to_owned()).or_default();
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            window.pop_front();
        }
        if window.len() >= per_minute as usize {
            let oldest = *window.front().expect("a full window has a first entry");
            return Err(WINDOW.saturating_sub(now.duration_since(oldest)));
        }
        window.push_back(now);
        Ok(())
    }
}

pub async fn per_key(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let key = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    if !key.is_empty() {
        if let Err(wait) = state.sdk_limiter.check(&key, state.sdk_requests_per_minute) {
            let mut response = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Too many requests with this key; retry after the time in Retry-After.",
            )
            .into_response();
            let seconds = wait.as_secs().max(1);
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(RETRY_AFTER, value);
            }
            return response;
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_has_its_own_budget() {
        let limiter = SdkRateLimiter::default();
        for _ in 0..3 {
            assert!(limiter.check("a", 3).is_ok());
        }
        let wait = limiter.check("a", 3).unwrap_err();
        assert!(wait <= WINDOW && wait > Duration::from_secs(50));
        assert!(limiter.check("b", 3).is_ok());
    }
}
