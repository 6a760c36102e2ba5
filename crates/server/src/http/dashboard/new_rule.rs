//! The new-rule form of a study's Targeting rules: which trigger it means, and what it
//! shows again when refused.

use serde::Deserialize;
use uj_domain::pacing::Trigger;
use uj_domain::studies::Surface;
use uj_domain::ValidationError;

/// The form as a browser sends it: both trigger fields, whichever radio is checked.
#[derive(Deserialize, Clone)]
pub(super) struct NewRuleForm {
    pub name: String,
    #[serde(default)]
    pub trigger_type: String,
    #[serde(default)]
    pub event_name: String,
    #[serde(default)]
    pub audience_id: String,
    pub surface: String,
    /// The form's key (`forms::new_form_key`); none from a page without it.
    #[serde(default)]
    pub form_key: String,
}

impl NewRuleForm {
    /// The trigger meant. Without JavaScript, picking an audience leaves the radio on "app
    /// event" (checked by default), so when the checked radio's field is empty and the
    /// other's is filled, the filled one is meant. Both filled, or neither, is refused:
    /// the trigger cannot be changed once the rule exists.
    pub fn trigger(&self) -> Result<Trigger, ValidationError> {
        let event = !self.event_name.trim().is_empty();
        let audience = !self.audience_id.trim().is_empty();
        match (self.trigger_type.as_str(), event, audience) {
            ("app_event" | "audience", true, true) => Err(ValidationError::new(
                "trigger.type",
                "enter an event name or choose an audience, not both (clear the one you do \
                 not mean; the trigger cannot be changed later)",
            )),
            ("app_event" | "audience", true, false) => {
                Ok(Trigger::AppEvent(self.event_name.clone()))
            }
            ("app_event" | "audience", false, true) => {
                Ok(Trigger::Audience(self.audience_id.clone()))
            }
            ("app_event", false, false) => Err(ValidationError::new(
                "trigger.event_name",
                "must not be empty (or choose an audience instead)",
            )),
            ("audience", false, false) => Err(ValidationError::new(
                "trigger.audience_id",
                "must be chosen (or enter an event name instead)",
            )),
            _ => Err(ValidationError::new(
                "trigger.type",
                "must be an app event or an audience",
            )),
        }
    }

    pub fn surface(&self) -> Result<Surface, ValidationError> {
        Surface::parse(&self.surface)
    }
}

/// What the form shows: empty at first, what was entered when it was refused.
#[derive(Default)]
pub(super) struct NewRuleView {
    /// A new key each time the form is shown (`forms::new_form_key`).
    pub form_key: String,
    pub name: String,
    /// The audience radio is checked (else the app-event one).
    pub audience_trigger: bool,
    pub event_name: String,
    pub audience_id: String,
    pub direct_link: bool,
}

impl From<NewRuleForm> for NewRuleView {
    fn from(form: NewRuleForm) -> Self {
        Self {
            form_key: super::forms::new_form_key(),
            audience_trigger: form.trigger_type == "audience",
            direct_link: form.surface == Surface::DirectLink.as_str(),
            name: form.name,
            event_name: form.event_name,
            audience_id: form.audience_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(trigger_type: &str, event_name: &str, audience_id: &str) -> NewRuleForm {
        NewRuleForm {
            name: "R".into(),
            trigger_type: trigger_type.into(),
            event_name: event_name.into(),
            audience_id: audience_id.into(),
            surface: "sdk_prompt".into(),
            form_key: String::new(),
        }
    }

    fn refused_field(form: &NewRuleForm) -> &'static str {
        form.trigger().unwrap_err().field
    }

    #[test]
    fn the_one_trigger_field_filled_decides_whichever_radio_is_checked() {
        for radio in ["app_event", "audience"] {
            assert_eq!(
                form(radio, "Order Completed", "").trigger().unwrap(),
                Trigger::AppEvent("Order Completed".into())
            );
            assert_eq!(
                form(radio, " ", "aud_1").trigger().unwrap(),
                Trigger::Audience("aud_1".into())
            );
        }
    }

    #[test]
    fn both_fields_or_neither_is_refused_naming_the_field_to_fill() {
        assert_eq!(
            refused_field(&form("app_event", "E", "aud_1")),
            "trigger.type"
        );
        assert_eq!(
            refused_field(&form("audience", "E", "aud_1")),
            "trigger.type"
        );
        assert_eq!(
            refused_field(&form("app_event", "", "")),
            "trigger.event_name"
        );
        assert_eq!(
            refused_field(&form("audience", "", " ")),
            "trigger.audience_id"
        );
        assert_eq!(refused_field(&form("bogus", "E", "")), "trigger.type");
        assert_eq!(refused_field(&form("", "E", "")), "trigger.type");
    }
}
