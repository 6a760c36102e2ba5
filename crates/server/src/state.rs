use std::sync::Arc;

use uj_storage::Store;

use crate::app_key::AppKey;
use crate::http::SdkRateLimiter;
use crate::services::login_throttle::LoginThrottle;
use crate::services::rule_stats::SuppressionCounter;

/// What every request handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub key: AppKey,
    pub public_url: String,
    pub secure_cookies: bool,
    pub login_throttle: Arc<LoginThrottle>,
    pub mixpanel: uj_mixpanel::Client,
    pub sdk_limiter: Arc<SdkRateLimiter>,
    /// Requests each public key may make per minute.
    pub sdk_requests_per_minute: u32,
    /// Pacing decisions counted per rule and reason, flushed in the background.
    pub suppressions: Arc<SuppressionCounter>,
}
