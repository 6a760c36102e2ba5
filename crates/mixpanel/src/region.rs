use std::fmt;

/// A Mixpanel data-residency cluster.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
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

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "us" => Some(Region::Us),
            "eu" => Some(Region::Eu),
            "in" => Some(Region::In),
            _ => None,
        }
    }

    /// The region a project's `domain` in `/api/app/me` names (`mixpanel.com`,
    /// `eu.mixpanel.com`, `in.mixpanel.com`, tolerating a scheme, a path and `api-`/`data-`
    /// host prefixes). `None` for an empty or unrecognised domain: a Mixpanel host this
    /// does not know (a new cluster) is not taken for the US one.
    pub fn from_domain(domain: &str) -> Option<Self> {
        let host = domain
            .trim()
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if host.is_empty() {
            return None;
        }
        if host == "mixpanel.com" {
            return Some(Region::Us);
        }
        match host.strip_suffix(".mixpanel.com")? {
            "api" | "data" | "www" => Some(Region::Us),
            "eu" | "api-eu" | "data-eu" => Some(Region::Eu),
            "in" | "api-in" | "data-in" => Some(Region::In),
            _ => None,
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Region::Us => "US",
            Region::Eu => "EU",
            Region::In => "India",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_map_to_regions() {
        assert_eq!(Region::from_domain("mixpanel.com"), Some(Region::Us));
        assert_eq!(Region::from_domain("eu.mixpanel.com"), Some(Region::Eu));
        assert_eq!(
            Region::from_domain("https://in.mixpanel.com/"),
            Some(Region::In)
        );
        assert_eq!(
            Region::from_domain("data-eu.mixpanel.com"),
            Some(Region::Eu)
        );
        assert_eq!(Region::from_domain("api.mixpanel.com"), Some(Region::Us));
        assert_eq!(Region::from_domain(""), None);
        assert_eq!(Region::from_domain("example.com"), None);
        assert_eq!(Region::from_domain("eu.example.com"), None);
        assert_eq!(Region::from_domain("eu2.mixpanel.com"), None);
        assert_eq!(Region::from_domain("api-us.mixpanel.com"), None);
    }
}
