//! Injected failures, switched on and off at run time by tests and the demo panel.

use serde::{Deserialize, Serialize};

use crate::Region;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Added to every API request, once; an admitted Query or Export request spends it
    /// holding its rate-limit slot.
    pub latency_ms: u64,
    /// The next N API requests fail with `fail_status`.
    pub fail_next: u32,
    /// Status for `fail_next` (default 503).
    pub fail_status: Option<u16>,
    /// The next N API requests have their connection dropped before a complete response.
    pub reset_next: u32,
    /// The next N API requests are answered 200 with a JSON body that never ends (spaces
    /// after `[`), as a broken proxy or a misbehaving cluster might.
    pub endless_next: u32,
    /// Cut raw exports short.
    pub truncate_export: Option<Truncate>,
    /// Limit the faults above to one region's hosts.
    pub only_region: Option<Region>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Truncate {
    /// Lines sent before the cut.
    pub after_lines: usize,
    pub mode: TruncateMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TruncateMode {
    /// End with the literal line `terminated early`, as Mixpanel has been seen to.
    TerminatedEarly,
    /// Drop the connection mid-body.
    Reset,
}

/// What the fault middleware should do with one request.
pub enum Action {
    Pass,
    Fail(u16),
    Reset,
    Endless,
}

impl Faults {
    pub fn applies_to(&self, region: Region) -> bool {
        self.only_region.is_none_or(|only| only == region)
    }

    /// Consumes one queued failure, if any.
    pub fn next_action(&mut self, region: Region) -> Action {
        if !self.applies_to(region) {
            return Action::Pass;
        }
        if self.reset_next > 0 {
            self.reset_next -= 1;
            return Action::Reset;
        }
        if self.endless_next > 0 {
            self.endless_next -= 1;
            return Action::Endless;
        }
        if self.fail_next > 0 {
            self.fail_next -= 1;
            return Action::Fail(self.fail_status.unwrap_or(503));
        }
        Action::Pass
    }
}
