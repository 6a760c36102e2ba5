//! Studies and their launch rules, with the validation every write goes through.

use chrono::{DateTime, Datelike, Utc};

use crate::ids::{LaunchRuleId, ProjectId, StudyId};
use crate::pacing::{RuleStatus, StudyStatus, Trigger};
use crate::validation::{self, name};
use crate::ValidationError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaunchMode {
    InApp,
    Browser,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    SdkPrompt,
    DirectLink,
}

macro_rules! string_enum {
    ($ty:ty, $field:literal, { $($variant:path => $text:literal),* $(,)? }) => {
        impl $ty {
            /// Every value's name, as `as_str` writes it and `parse` takes it.
            pub const NAMES: &'static [&'static str] = &[$($text),*];

            pub fn as_str(self) -> &'static str {
                match self { $($variant => $text),* }
            }

            pub fn parse(raw: &str) -> Result<Self, ValidationError> {
                match raw {
                    $($text => Ok($variant),)*
                    _ => Err(ValidationError::new($field, format!(
                        "must be one of {}", Self::NAMES.join(", ")
                    ))),
                }
            }
        }
    };
}

string_enum!(StudyStatus, "status", { StudyStatus::Active => "active", StudyStatus::Paused => "paused", StudyStatus::Archived => "archived" });
string_enum!(RuleStatus, "status", { RuleStatus::Draft => "draft", RuleStatus::Active => "active", RuleStatus::Paused => "paused", RuleStatus::Archived => "archived" });
string_enum!(LaunchMode, "launch_mode", { LaunchMode::InApp => "in_app", LaunchMode::Browser => "browser" });
string_enum!(Surface, "surface", { Surface::SdkPrompt => "sdk_prompt", Surface::DirectLink => "direct_link" });

#[derive(Debug, Clone, PartialEq)]
pub struct Study {
    pub id: StudyId,
    pub project_id: ProjectId,
    pub name: String,
    pub status: StudyStatus,
    pub interview_url: String,
    pub launch_mode: LaunchMode,
    pub weekly_limit: Option<i64>,
    pub monthly_limit: Option<i64>,
    /// Public, for `/i/{code}` links.
    pub public_code: String,
    /// Whether `/i/{public_code}` opens the interview in a plain browser, for anyone who has
    /// it. Off, the study is reached only through its rules.
    pub public_link: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Study {
    /// Checks every field and the limits together; the first problem names its field.
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.check(None)
    }

    /// [`Self::validate`] for a change from `before`: only the fields the change set are
    /// held to today's bounds, so that a study stored before a bound can still be paused or
    /// renamed.
    pub fn validate_change_from(&self, before: &Study) -> Result<(), ValidationError> {
        self.check(Some(before))
    }

    fn check(&self, before: Option<&Study>) -> Result<(), ValidationError> {
        let changed = |same: fn(&Study, &Study) -> bool| before.is_none_or(|b| !same(self, b));
        if changed(|a, b| a.name == b.name) {
            name("name", &self.name, 200)?;
        }
        if changed(|a, b| a.interview_url == b.interview_url) {
            interview_url(&self.interview_url)?;
        }
        let limits_changed =
            changed(|a, b| (a.weekly_limit, a.monthly_limit) == (b.weekly_limit, b.monthly_limit));
        for (field, limit, is_changed) in [
            (
                "weekly_limit",
                self.weekly_limit,
                changed(|a, b| a.weekly_limit == b.weekly_limit),
            ),
            (
                "monthly_limit",
                self.monthly_limit,
                changed(|a, b| a.monthly_limit == b.monthly_limit),
            ),
        ] {
            if !is_changed {
                continue;
            }
            if limit.is_some_and(|l| l < 1) {
                return Err(ValidationError::new(
                    field,
                    "must be at least 1 (or null for no limit)",
                ));
            }
            at_most_max_starts(field, limit, "(or null for no limit)")?;
        }
        // A month holds every week's starts, so a lower monthly limit would silently
        // replace the weekly one.
        if let (true, Some(weekly), Some(monthly)) =
            (limits_changed, self.weekly_limit, self.monthly_limit)
        {
            if monthly < weekly {
                return Err(ValidationError::new(
                    "monthly_limit",
                    format!("must be at least the weekly limit ({weekly})"),
                ));
            }
        }
        Ok(())
    }
}

/// An `http(s)` URL of at most 2000 characters naming a host, free of whitespace and control
/// characters (a redirect carries it in a `Location` header).
pub fn interview_url(raw: &str) -> Result<(), ValidationError> {
    if raw.chars().count() > 2000 {
        return Err(ValidationError::new(
            "interview_url",
            "must be at most 2000 characters",
        ));
    }
    // The scheme in any case (`HTTPS://` is a URL too), then a host.
    let scheme = raw.get(..8).unwrap_or(raw).to_ascii_lowercase();
    let rest = ["https://", "http://"]
        .into_iter()
        .find(|prefix| scheme.starts_with(prefix))
        .map_or("", |prefix| &raw[prefix.len()..]);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if !is_host_and_port(authority) {
        return Err(ValidationError::new(
            "interview_url",
            "must be an http(s) URL naming a host (a domain name or an IP address)",
        ));
    }
    // Said as what it is: the host was blamed for a space in the query. Bidirectional
    // overrides and invisible characters too, as in names: the dashboard shows the URL
    // (found by the studies review: `https://r.example.com/i\u{202E}` was taken).
    if raw.chars().any(|c| {
        c.is_whitespace()
            || c.is_control()
            || crate::validation::is_bidi_override(c)
            || crate::validation::shows_nothing(c)
    }) {
        return Err(ValidationError::new(
            "interview_url",
            "must not contain spaces, control, invisible or bidirectional override characters (write a space as %20)",
        ));
    }
    Ok(())
}

/// Whether `authority` (what follows `scheme://` up to the path, query or fragment) is a
/// host, maybe with a port: a domain name (of any script) or an IP address (in brackets for
/// IPv6). No user name or password: a study's URL needs none.
fn is_host_and_port(authority: &str) -> bool {
    let (host_ok, port) = match authority.strip_prefix('[') {
        Some(literal) => match literal.split_once(']') {
            Some((ip, port)) => (ip.parse::<std::net::Ipv6Addr>().is_ok(), port),
            None => return false,
        },
        None => {
            let (name, port) = authority.split_at(authority.find(':').unwrap_or(authority.len()));
            (is_domain_name(name), port)
        }
    };
    // A port is digits up to 65535 (`parse` alone would take a sign).
    let port_ok = port.is_empty()
        || port.strip_prefix(':').is_some_and(|digits| {
            digits.bytes().all(|b| b.is_ascii_digit()) && digits.parse::<u16>().is_ok()
        });
    host_ok && port_ok
}

/// Whether `name` is a host a browser opens: letters (of any script), digits, `-` and `_`
/// in labels of at most 63 characters (as punycode) between dots, none empty nor starting or
/// ending with `-`, each with a letter or digit; or, when its last label is a number (`0x10`
/// is one), an IPv4 address of four decimal numbers (as a browser reads `1.2.3`, or `a.1`, as
/// an address). A
/// trailing dot (the root) is allowed.
fn is_domain_name(name: &str) -> bool {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return false;
    }
    let Ok(ascii) = idna::domain_to_ascii(name) else {
        return false;
    };
    let ascii = ascii.strip_suffix('.').unwrap_or(&ascii);
    let labels_ok = !ascii.is_empty()
        && ascii.len() <= 253
        && ascii.split('.').all(|label| {
            label.len() <= 63
                && label.bytes().any(|b| b.is_ascii_alphanumeric())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    let last = ascii.rsplit('.').next().unwrap_or_default();
    // As a browser's URL parser tells a number: decimal, or hexadecimal after `0x`.
    let hex = last
        .strip_prefix("0x")
        .is_some_and(|digits| digits.bytes().all(|b| b.is_ascii_hexdigit()));
    let numeric = hex || last.bytes().all(|b| b.is_ascii_digit());
    labels_ok && (!numeric || ascii.parse::<std::net::Ipv4Addr>().is_ok())
}

/// The largest start cap a rule (`max_starts`) or a study (`weekly_limit`,
/// `monthly_limit`) may have: a billion, far beyond any real study, so that a cap is a
/// number people mean, not a stand-in for "no cap" (that is null). Caps stored before the
/// bound (up to 2^63−1) are still read as they are.
pub const MAX_STARTS: i64 = 1_000_000_000;

fn at_most_max_starts(
    field: &'static str,
    cap: Option<i64>,
    otherwise: &str,
) -> Result<(), ValidationError> {
    if cap.is_some_and(|c| c > MAX_STARTS) {
        return Err(ValidationError::new(
            field,
            format!("must be at most 1000000000 {otherwise}"),
        ));
    }
    Ok(())
}

/// The prompt the SDK shows; empty fields mean the SDK's defaults.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PromptCopy {
    pub title: String,
    pub message: String,
    pub start_label: String,
    pub dismiss_label: String,
}

/// Copy as it is kept: blank is empty (the SDK's default, not a blank title or button), and
/// a button label (`label`) is trimmed; a title or message keeps its spaces and line breaks.
pub fn prompt_text(text: &str, label: bool) -> String {
    match (text.trim(), label) {
        ("", _) => String::new(),
        (trimmed, true) => trimmed.to_owned(),
        (_, false) => text.to_owned(),
    }
}

/// The longest cooldown a rule may have: ten years. Beyond it "never again" is meant, and
/// the pacing engine's date arithmetic stays far from its limits.
pub const MAX_COOLDOWN_SECONDS: i64 = 10 * 366 * 86_400;

#[derive(Debug, Clone, PartialEq)]
pub struct LaunchRule {
    pub id: LaunchRuleId,
    pub project_id: ProjectId,
    pub study_id: StudyId,
    pub name: String,
    pub status: RuleStatus,
    /// Fixed at creation.
    pub trigger: Trigger,
    pub surface: Surface,
    pub prompt: PromptCopy,
    pub priority: i64,
    pub cooldown_seconds: i64,
    /// `None` = no cap.
    pub max_starts: Option<i64>,
    pub sampling_percent: i64,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl LaunchRule {
    /// Whether a prompt it issued may still be shown and accepted at `now`: the rule is
    /// active, prompts in the app, and its schedule window holds `now`. A rule that stops
    /// being so withdraws the prompts it offered.
    pub fn offers_prompts_at(&self, now: DateTime<Utc>) -> bool {
        self.status == RuleStatus::Active
            && self.surface == Surface::SdkPrompt
            && self.starts_at.is_none_or(|start| start <= now)
            && self.ends_at.is_none_or(|end| now < end)
    }

    /// Checks every field (the audience's existence is checked by the caller, who can
    /// see storage); the first problem names its field.
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.check(None)
    }

    /// [`Self::validate`] for a change from `before`: only the fields the change set are
    /// held to today's bounds, so that a rule stored before a bound (a longer cooldown, a
    /// higher cap) can still be paused or renamed.
    pub fn validate_change_from(&self, before: &LaunchRule) -> Result<(), ValidationError> {
        self.check(Some(before))
    }

    fn check(&self, before: Option<&LaunchRule>) -> Result<(), ValidationError> {
        let changed =
            |same: fn(&LaunchRule, &LaunchRule) -> bool| before.is_none_or(|b| !same(self, b));
        if changed(|a, b| a.name == b.name) {
            name("name", &self.name, 200)?;
        }
        if changed(|a, b| a.trigger == b.trigger) {
            match &self.trigger {
                Trigger::AppEvent(name) => {
                    validation::name("trigger.event_name", name, 255)?;
                }
                Trigger::Audience(id) if id.trim().is_empty() => {
                    return Err(ValidationError::new(
                        "trigger.audience_id",
                        "must name an audience",
                    ));
                }
                Trigger::Audience(_) => {}
            }
        }
        let prompt = [
            (
                "prompt.title",
                &self.prompt.title,
                120,
                changed(|a, b| a.prompt.title == b.prompt.title),
            ),
            (
                "prompt.message",
                &self.prompt.message,
                500,
                changed(|a, b| a.prompt.message == b.prompt.message),
            ),
            (
                "prompt.start_label",
                &self.prompt.start_label,
                40,
                changed(|a, b| a.prompt.start_label == b.prompt.start_label),
            ),
            (
                "prompt.dismiss_label",
                &self.prompt.dismiss_label,
                40,
                changed(|a, b| a.prompt.dismiss_label == b.prompt.dismiss_label),
            ),
        ];
        for (field, text, max, _) in prompt.into_iter().filter(|(.., is_changed)| *is_changed) {
            if text.chars().count() > max {
                return Err(ValidationError::new(
                    field,
                    format!("must be at most {max} characters"),
                ));
            }
            // A button's label is one line (a line break in one showed as a second line).
            if field.ends_with("_label") && text.contains(['\n', '\r']) {
                return Err(ValidationError::new(field, "must be one line"));
            }
            // Line breaks and tabs may shape the copy; no other control character.
            if text
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
            {
                return Err(ValidationError::new(
                    field,
                    "must not contain control characters other than line breaks and tabs",
                ));
            }
            // Right-to-left copy may need them; one left open reorders what the app shows
            // after the copy, as in names (`validation::bounded_text`).
            if !validation::bidi_balanced(text) {
                return Err(ValidationError::new(
                    field,
                    "must close each bidirectional embedding or override (U+202A, U+202B, U+202D, U+202E) with U+202C and each isolate (U+2066–U+2068) with U+2069, in order, on the same line",
                ));
            }
        }
        if changed(|a, b| a.priority == b.priority) && !(-1000..=1000).contains(&self.priority) {
            return Err(ValidationError::new(
                "priority",
                "must be between -1000 and 1000",
            ));
        }
        if changed(|a, b| a.cooldown_seconds == b.cooldown_seconds)
            && !(0..=MAX_COOLDOWN_SECONDS).contains(&self.cooldown_seconds)
        {
            return Err(ValidationError::new(
                "cooldown_seconds",
                "must be between 0 and 316224000 (ten years)",
            ));
        }
        if changed(|a, b| a.max_starts == b.max_starts) {
            if self.max_starts.is_some_and(|m| m < 1) {
                return Err(ValidationError::new(
                    "max_starts",
                    "must be at least 1 (or null for no cap)",
                ));
            }
            at_most_max_starts("max_starts", self.max_starts, "(or null for no cap)")?;
        }
        if changed(|a, b| a.sampling_percent == b.sampling_percent)
            && !(0..=100).contains(&self.sampling_percent)
        {
            return Err(ValidationError::new(
                "sampling_percent",
                "must be between 0 and 100",
            ));
        }
        // Four-digit years from 1970: 9999-12-31 is how "no end" is often said.
        for (field, at, is_changed) in [
            (
                "starts_at",
                self.starts_at,
                changed(|a, b| a.starts_at == b.starts_at),
            ),
            (
                "ends_at",
                self.ends_at,
                changed(|a, b| a.ends_at == b.ends_at),
            ),
        ] {
            if is_changed && at.is_some_and(|at| !(1970..=9999).contains(&at.year())) {
                return Err(ValidationError::new(
                    field,
                    "must be between 1970 and 9999 (9999-12-31T23:59:59Z for no end)",
                ));
            }
        }
        if let (true, Some(start), Some(end)) = (
            changed(|a, b| (a.starts_at, a.ends_at) == (b.starts_at, b.ends_at)),
            self.starts_at,
            self.ends_at,
        ) {
            if end <= start {
                return Err(ValidationError::new("ends_at", "must be after starts_at"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> LaunchRule {
        let now = Utc::now();
        LaunchRule {
            id: LaunchRuleId::generate(),
            project_id: ProjectId::generate(),
            study_id: StudyId::generate(),
            name: "Checkout".into(),
            status: RuleStatus::Draft,
            trigger: Trigger::AppEvent("Order Completed".into()),
            surface: Surface::SdkPrompt,
            prompt: PromptCopy::default(),
            priority: 0,
            cooldown_seconds: 0,
            max_starts: None,
            sampling_percent: 100,
            starts_at: None,
            ends_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn every_invalid_field_is_named() {
        let now = Utc::now();
        let cases: Vec<(LaunchRule, &str)> = vec![
            (
                LaunchRule {
                    name: " ".into(),
                    ..rule()
                },
                "name",
            ),
            (
                LaunchRule {
                    trigger: Trigger::AppEvent("".into()),
                    ..rule()
                },
                "trigger.event_name",
            ),
            (
                LaunchRule {
                    trigger: Trigger::Audience(" ".into()),
                    ..rule()
                },
                "trigger.audience_id",
            ),
            (
                LaunchRule {
                    cooldown_seconds: -1,
                    ..rule()
                },
                "cooldown_seconds",
            ),
            (
                LaunchRule {
                    max_starts: Some(0),
                    ..rule()
                },
                "max_starts",
            ),
            (
                LaunchRule {
                    max_starts: Some(MAX_STARTS + 1),
                    ..rule()
                },
                "max_starts",
            ),
            (
                LaunchRule {
                    sampling_percent: 101,
                    ..rule()
                },
                "sampling_percent",
            ),
            (
                LaunchRule {
                    starts_at: Some(now),
                    ends_at: Some(now),
                    ..rule()
                },
                "ends_at",
            ),
            (
                LaunchRule {
                    prompt: PromptCopy {
                        title: "x".repeat(121),
                        ..PromptCopy::default()
                    },
                    ..rule()
                },
                "prompt.title",
            ),
        ];
        for (rule, field) in cases {
            assert_eq!(rule.validate().unwrap_err().field, field);
        }
        assert!(rule().validate().is_ok());
    }

    /// Right-to-left copy may need embeddings, overrides and isolates, but one left open
    /// reorders whatever the app shows after the copy: each must be closed (U+202C for an
    /// embedding or override, U+2069 for an isolate) in its own field and line, in order.
    #[test]
    fn prompt_copy_takes_bidirectional_controls_only_when_each_is_closed() {
        let with = |title: &str, start_label: &str| LaunchRule {
            prompt: PromptCopy {
                title: title.into(),
                start_label: start_label.into(),
                ..PromptCopy::default()
            },
            ..rule()
        };
        for balanced in [
            "\u{202B}\u{5e9}\u{5dc}\u{5d5}\u{5dd}\u{202C} Hello",
            "\u{2067}\u{5e9}\u{5dc}\u{5d5}\u{5dd}\u{2069}",
            "\u{202E}ab\u{202C} \u{2066}c\u{202A}d\u{202C}\u{2069}",
            "\u{2068}a\u{2069}\n\u{202D}b\u{202C}",
        ] {
            assert!(with(balanced, "").validate().is_ok(), "{balanced:?}");
            let label = balanced.replace('\n', " ");
            assert!(with("", &label).validate().is_ok(), "{label:?}");
        }
        for unbalanced in [
            "\u{202E}Order Completed",
            "Hello\u{202C}",
            "\u{2069}",
            "\u{2066}open",
            "\u{202B}a\u{2069}",
            // Closed in the wrong order: the isolate's end closes the embedding inside it.
            "\u{2066}\u{202B}a\u{2069}\u{202C}",
            // A line break ends them all (UAX #9, rule X8).
            "\u{202B}a\nb\u{202C}",
            "\u{2067}a\u{2029}b\u{2069}",
        ] {
            let error = with(unbalanced, "").validate().unwrap_err();
            assert_eq!(error.field, "prompt.title", "{unbalanced:?}");
            assert!(error.message.contains("U+202C"), "{}", error.message);
            assert!(error.message.contains("U+2069"), "{}", error.message);
            if !unbalanced.contains(['\n', '\u{2029}']) {
                let error = with("", unbalanced).validate().unwrap_err();
                assert_eq!(error.field, "prompt.start_label", "{unbalanced:?}");
            }
        }
        // Each field closes its own: the title's opener is not closed by the message.
        let split = LaunchRule {
            prompt: PromptCopy {
                title: "\u{202B}a".into(),
                message: "b\u{202C}".into(),
                ..PromptCopy::default()
            },
            ..rule()
        };
        assert_eq!(split.validate().unwrap_err().field, "prompt.title");
    }

    /// A change holds only the fields it sets to today's bounds: a rule stored before a
    /// bound can still be paused or renamed, and a changed field is still checked.
    #[test]
    fn a_change_checks_the_fields_it_sets() {
        let stored = LaunchRule {
            cooldown_seconds: MAX_COOLDOWN_SECONDS * 2,
            priority: 5000,
            max_starts: Some(i64::MAX),
            ..rule()
        };
        assert_eq!(stored.validate().unwrap_err().field, "priority");
        let renamed = LaunchRule {
            name: "Renamed".into(),
            status: RuleStatus::Paused,
            ..stored.clone()
        };
        assert!(renamed.validate_change_from(&stored).is_ok());
        for (changed, field) in [
            (
                LaunchRule {
                    cooldown_seconds: MAX_COOLDOWN_SECONDS + 1,
                    ..stored.clone()
                },
                "cooldown_seconds",
            ),
            (
                LaunchRule {
                    max_starts: Some(MAX_STARTS + 1),
                    ..stored.clone()
                },
                "max_starts",
            ),
            (
                LaunchRule {
                    name: String::new(),
                    ..stored.clone()
                },
                "name",
            ),
        ] {
            assert_eq!(
                changed.validate_change_from(&stored).unwrap_err().field,
                field
            );
        }
    }

    #[test]
    fn enums_parse_their_names_and_refuse_others_naming_the_field() {
        assert_eq!(Surface::parse("direct_link").unwrap(), Surface::DirectLink);
        assert_eq!(RuleStatus::parse("archived").unwrap().as_str(), "archived");
        let error = LaunchMode::parse("tv").unwrap_err();
        assert_eq!(error.field, "launch_mode");
        assert!(error.message.contains("in_app, browser"));
    }

    #[test]
    fn an_interview_url_s_space_is_said_as_such() {
        let error = interview_url("https://forms.example.com/s?name=Jane Doe").unwrap_err();
        assert!(error.message.contains("spaces"), "{error}");
        assert!(interview_url("https://forms.example.com/s?name=Jane%20Doe").is_ok());
    }

    #[test]
    fn interview_urls_must_be_http() {
        assert!(interview_url("https://research.example.com/i/abc").is_ok());
        assert!(interview_url("HTTPS://research.example.com/i/abc").is_ok());
        assert!(interview_url("Http://research.example.com/i/abc").is_ok());
        assert!(interview_url("http://x").is_ok(), "as https://x is");
        assert!(interview_url("https://x").is_ok());
        for good in [
            "http://localhost:3000/i?x=1#f",
            "https://r_1.example.com:8443/i",
            "https://[2001:db8::1]:8443/i",
            "https://192.0.2.1/i",
            "https://bücher.example/i",
            "https://r.example.com./i",
            "https://1-2.example.com/i",
            "https://[::ffff:192.0.2.1]/i",
            "https://2024.example/i",
        ] {
            assert!(interview_url(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "ftp://x",
            "https://",
            "http://",
            "https:///path",
            "javascript:alert(1)",
            "https://a b",
        ] {
            assert!(interview_url(bad).is_err(), "{bad}");
        }
    }

    /// The host is a name or an IP address, maybe with a port: not markup, quotes, a user
    /// name and password, or nothing before the query. (Anything but whitespace and controls
    /// was taken: `http://x"><script>alert(1)</script>`.)
    #[test]
    fn interview_urls_name_a_host() {
        for bad in [
            r#"http://x"><script>alert(1)</script>"#,
            "https://x<y/",
            "https://?x=1",
            "https://#f",
            "https://user:pw@r.example.com/i",
            "https://r.example.com:/i",
            "https://r.example.com:99999/i",
            "https://r.example.com:80x/i",
            "https://[zz]/i",
            "https://[::1/i",
            // Names no browser opens (found by the launch probe: each was a study's URL).
            "https://./i",
            "https://-/i",
            "https://a..b/i",
            "https://_/i",
            "https://xn--/i",
            "https://a-.example.com/i",
            "https://[:]/i",
            "https://[::::::]/i",
            "https://999.999.999.999/i",
            "https://1.2.3/i",
            "https://example.123/i",
            "https://example.0x10/i",
            "https://0x7f.1/i",
            "https://a%20b/i",
        ] {
            let error = interview_url(bad).unwrap_err();
            assert_eq!(error.field, "interview_url", "{bad}");
        }
    }

    /// A study stored before a bound (a URL without a valid host) can still be renamed or
    /// paused; a changed URL is held to it.
    #[test]
    fn a_study_change_checks_the_fields_it_sets() {
        let now = Utc::now();
        let stored = Study {
            id: StudyId::generate(),
            project_id: ProjectId::generate(),
            name: "S".into(),
            status: StudyStatus::Active,
            interview_url: r#"http://x"><script>alert(1)</script>"#.into(),
            launch_mode: LaunchMode::InApp,
            weekly_limit: None,
            monthly_limit: None,
            public_code: "p".into(),
            public_link: true,
            created_at: now,
            updated_at: now,
        };
        assert_eq!(stored.validate().unwrap_err().field, "interview_url");
        let renamed = Study {
            name: "Renamed".into(),
            status: StudyStatus::Paused,
            ..stored.clone()
        };
        assert!(renamed.validate_change_from(&stored).is_ok());
        let moved = Study {
            interview_url: "http://y\"/".into(),
            ..stored.clone()
        };
        assert_eq!(
            moved.validate_change_from(&stored).unwrap_err().field,
            "interview_url"
        );
    }

    /// A URL too long is told so, not that it is no http(s) URL.
    #[test]
    fn an_interview_url_too_long_says_so() {
        let long = format!("https://r.example.com/{}", "a".repeat(2000));
        assert_eq!(
            interview_url(&long).unwrap_err().message,
            "must be at most 2000 characters"
        );
        let longest = format!("https://r.example.com/{}", "a".repeat(2000 - 22));
        assert!(interview_url(&longest).is_ok());
    }

    #[test]
    fn interview_urls_refuse_control_characters() {
        for bad in [
            "https://research.example.com/a\u{1}b",
            "https://r.example.com/\u{7f}",
            "https://r.example.com/i\u{202E}",
            "https://r.example.com/i?\u{2066}a",
            "https://r.example.com/i\u{200B}",
            "https://r.example.com/i#\u{FEFF}",
        ] {
            let error = interview_url(bad).unwrap_err();
            assert_eq!(error.field, "interview_url", "{bad:?}");
        }
    }
}
