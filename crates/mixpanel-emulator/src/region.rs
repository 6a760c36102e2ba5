use serde::{Deserialize, Serialize};

/// A Mixpanel data-residency cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    Us,
    Eu,
    In,
}

impl Region {
    pub const ALL: [Region; 3] = [Region::Us, Region::Eu, Region::In];

    pub fn as_str(self) -> &'static str {
        match self {
            Region::Us => "us",
            Region::Eu => "eu",
            Region::In => "in",
        }
    }

    /// The `domain` Mixpanel reports for a project in this cluster (`/api/app/me`).
    pub fn domain(self) -> &'static str {
        match self {
            Region::Us => "mixpanel.com",
            Region::Eu => "eu.mixpanel.com",
            Region::In => "in.mixpanel.com",
        }
    }

    /// Path prefix of this region's App and Query API host (`mixpanel.com`, `eu.…`, `in.…`).
    pub fn api_prefix(self) -> &'static str {
        match self {
            Region::Us => "/us",
            Region::Eu => "/eu",
            Region::In => "/in",
        }
    }

    /// Path prefix of this region's Raw Export host (`data.`, `data-eu.`, `data-in.`).
    pub fn data_prefix(self) -> &'static str {
        match self {
            Region::Us => "/data-us",
            Region::Eu => "/data-eu",
            Region::In => "/data-in",
        }
    }
}
