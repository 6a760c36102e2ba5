//! The rule editor's form: its fields as the page shows a rule, and the change a save
//! makes of them (only what was edited).

use chrono::{DateTime, NaiveDateTime, TimeZone, Timelike, Utc};
use serde::Deserialize;
use uj_domain::studies::{LaunchRule, Surface};
use uj_domain::ValidationError;

use crate::http::dashboard::forms::{form_version, optional_number, whole_number};
use crate::services::studies::RuleChange;

/// A schedule time as the editor's `datetime-local` input shows it: to the minute, or to the
/// second when it has seconds (set over REST), so that saving the form keeps them.
fn local(at: Option<DateTime<Utc>>) -> String {
    at.map(|t| match t.second() {
        0 => t.format("%Y-%m-%dT%H:%M").to_string(),
        _ => t.format("%Y-%m-%dT%H:%M:%S").to_string(),
    })
    .unwrap_or_default()
}

#[derive(Deserialize, Clone)]
pub(super) struct RuleForm {
    pub(super) name: String,
    pub(super) surface: String,
    pub(super) prompt_title: String,
    pub(super) prompt_message: String,
    pub(super) prompt_start_label: String,
    pub(super) prompt_dismiss_label: String,
    pub(super) priority: String,
    pub(super) cooldown_hours: String,
    pub(super) max_starts: String,
    pub(super) sampling_percent: String,
    pub(super) starts_at: String,
    pub(super) ends_at: String,
    /// The rule's version the page showed (`updated_at` in microseconds).
    #[serde(default)]
    pub(super) version: String,
}

fn utc_minute(field: &'static str, raw: &str) -> Result<Option<DateTime<Utc>>, ValidationError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S"))
        .map(|t| Some(Utc.from_utc_datetime(&t)))
        .map_err(|_| ValidationError::new(field, "must be a date and time"))
}

impl RuleForm {
    /// The editor's fields as its page shows `rule`.
    pub(super) fn shown(rule: &LaunchRule) -> Self {
        let p = &rule.prompt;
        Self {
            name: rule.name.clone(),
            surface: rule.surface.as_str().to_owned(),
            prompt_title: p.title.clone(),
            prompt_message: p.message.clone(),
            prompt_start_label: p.start_label.clone(),
            prompt_dismiss_label: p.dismiss_label.clone(),
            priority: rule.priority.to_string(),
            cooldown_hours: format!("{}", rule.cooldown_seconds as f64 / 3600.0),
            max_starts: rule.max_starts.map(|m| m.to_string()).unwrap_or_default(),
            sampling_percent: rule.sampling_percent.to_string(),
            starts_at: local(rule.starts_at),
            ends_at: local(rule.ends_at),
            version: rule.updated_at.timestamp_micros().to_string(),
        }
    }

    /// The change, without the fields sent as the page showed them for `rule`: the editor
    /// shows times to the second, a cooldown in hours and copy with a browser's line
    /// breaks, so sending them back as they were would rewrite what REST set finer
    /// (`…:40.606Z` became `…:40Z` on a rename, and two times a fraction of a second apart
    /// the same minute, refused).
    pub(super) fn change_over(self, rule: &LaunchRule) -> Result<RuleChange, ValidationError> {
        let shown = Self::shown(rule);
        let line = |typed: &str, shown: &str| typed.trim() == shown.trim();
        let copy = |typed: &str, shown: &str| typed == shown.replace("\r\n", "\n");
        let mut change = self.clone().change()?;
        if line(&self.name, &shown.name) {
            change.name = None;
        }
        if line(&self.surface, &shown.surface) {
            change.surface = None;
        }
        if copy(&self.prompt_title, &shown.prompt_title) {
            change.prompt_title = None;
        }
        if copy(&self.prompt_message, &shown.prompt_message) {
            change.prompt_message = None;
        }
        if copy(&self.prompt_start_label, &shown.prompt_start_label) {
            change.prompt_start_label = None;
        }
        if copy(&self.prompt_dismiss_label, &shown.prompt_dismiss_label) {
            change.prompt_dismiss_label = None;
        }
        if line(&self.priority, &shown.priority) {
            change.priority = None;
        }
        if line(&self.cooldown_hours, &shown.cooldown_hours) {
            change.cooldown_seconds = None;
        }
        if line(&self.max_starts, &shown.max_starts) {
            change.max_starts = None;
        }
        if line(&self.sampling_percent, &shown.sampling_percent) {
            change.sampling_percent = None;
        }
        if line(&self.starts_at, &shown.starts_at) {
            change.starts_at = None;
        }
        if line(&self.ends_at, &shown.ends_at) {
            change.ends_at = None;
        }
        // Everything sent is what the rule holds (the form sent twice, a Save without an
        // edit): nothing to refuse, however old its page.
        if change.asks_nothing() {
            change.version = None;
        }
        Ok(change)
    }

    /// The copy's line breaks as the app gets them: browsers send a text area's as CRLF.
    pub(super) fn with_plain_line_breaks(mut self) -> Self {
        for text in [
            &mut self.prompt_title,
            &mut self.prompt_message,
            &mut self.prompt_start_label,
            &mut self.prompt_dismiss_label,
        ] {
            if text.contains('\r') {
                *text = text.replace("\r\n", "\n");
            }
        }
        self
    }

    fn change(self) -> Result<RuleChange, ValidationError> {
        let number = whole_number;
        let hours: f64 = self
            .cooldown_hours
            .trim()
            .parse()
            .ok()
            .filter(|h: &f64| h.is_finite())
            .ok_or_else(|| ValidationError::new("cooldown_seconds", "must be a number of hours"))?;
        let cooldown_seconds = (hours * 3600.0).round() as i64;
        // A cooldown under half a second (either way) would be stored as none at all.
        if hours != 0.0 && cooldown_seconds == 0 {
            return Err(ValidationError::new(
                "cooldown_seconds",
                "must be at least one second (0.0003 hours), or 0 for none",
            ));
        }
        Ok(RuleChange {
            name: Some(self.name),
            surface: Some(Surface::parse(&self.surface)?),
            prompt_title: Some(self.prompt_title),
            prompt_message: Some(self.prompt_message),
            prompt_start_label: Some(self.prompt_start_label),
            prompt_dismiss_label: Some(self.prompt_dismiss_label),
            priority: Some(number("priority", &self.priority)?),
            cooldown_seconds: Some(cooldown_seconds),
            max_starts: Some(optional_number("max_starts", &self.max_starts)?),
            sampling_percent: Some(number("sampling_percent", &self.sampling_percent)?),
            starts_at: Some(utc_minute("starts_at", &self.starts_at)?),
            ends_at: Some(utc_minute("ends_at", &self.ends_at)?),
            version: form_version(&self.version),
            ..RuleChange::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A schedule time goes through the editor unchanged: to the minute, or with the seconds
    /// a time set over REST has (saving the form cut them, and a window of seconds closed).
    #[test]
    fn schedule_times_go_through_the_editor_unchanged() {
        for raw in ["2027-01-01T10:00:00Z", "2027-01-01T10:00:30Z"] {
            let at: DateTime<Utc> = raw.parse().unwrap();
            let shown = local(Some(at));
            assert_eq!(
                utc_minute("starts_at", &shown).unwrap(),
                Some(at),
                "{shown}"
            );
        }
        assert_eq!(
            local(Some("2027-01-01T10:00:00Z".parse().unwrap())),
            "2027-01-01T10:00"
        );
        assert_eq!(utc_minute("ends_at", " ").unwrap(), None);
        assert!(utc_minute("ends_at", "tomorrow").is_err());
    }
}
