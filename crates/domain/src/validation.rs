/// A value that failed validation, naming the field so clients can point at it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: &'static str,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// Trims `raw` and checks it is non-empty, at most `max_chars` characters, and free of
/// control characters and bidirectional overrides; errors name `field`.
pub fn bounded_text(
    field: &'static str,
    raw: &str,
    max_chars: usize,
) -> Result<String, ValidationError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if trimmed.chars().count() > max_chars {
        return Err(ValidationError::new(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    // Shown on pages beside other text, these reorder it: a name could read as another
    // ("Order Completed" written backwards after U+202E) and scramble what follows it.
    if trimmed.chars().any(is_bidi_override) {
        return Err(ValidationError::new(
            field,
            "must not contain bidirectional embedding, override or isolate characters (U+202A–U+202E, U+2066–U+2069)",
        ));
    }
    Ok(trimmed.to_owned())
}

/// A name people pick from a list or read on a page (an event's, a study's, a rule's, a
/// project's): [`bounded_text`], and no invisible character. Ids are not names: an app's
/// user id must match Mixpanel's as it is.
pub fn name(field: &'static str, raw: &str, max_chars: usize) -> Result<String, ValidationError> {
    let name = bounded_text(field, raw, max_chars)?;
    // Invisible, they make a lookalike: "Order\u{200B} Completed" is another event than the
    // one the rule editor seems to offer. (Joiners, U+200C/U+200D, are kept: they are part of
    // words in several scripts and of emoji.)
    if name.chars().any(is_invisible) {
        return Err(ValidationError::new(
            field,
            "must not contain invisible characters (U+00AD, U+180E, U+200B, U+2060–U+2064, U+FEFF)",
        ));
    }
    Ok(name)
}

/// Whether an app can send `name` as an event: the SDK takes no other (a rule stored before
/// a character was refused in names may wait for one no app can send).
pub fn sendable_event(name: &str) -> bool {
    self::name("event_name", name, 255).is_ok()
}

/// Characters that show as nothing and mean nothing in a name.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}' | '\u{180E}' | '\u{200B}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}'
    )
}

/// Text from elsewhere (Mixpanel's names and descriptions) shown as a name: each control
/// character (a NUL, which PostgreSQL cannot store in text; a line break) and each
/// bidirectional override (which would reorder the page around it) a space, trimmed, at
/// most `most` characters (cut with "…"). Blank is none.
pub fn one_line(text: &str, most: usize) -> Option<String> {
    let plain: String = text
        .chars()
        .map(|c| match c.is_control() || is_bidi_override(c) {
            true => ' ',
            false => c,
        })
        .collect();
    let plain = plain.trim();
    match plain.char_indices().nth(most) {
        _ if plain.is_empty() => None,
        Some((cut, _)) => Some(format!("{}…", plain[..cut].trim_end())),
        None => Some(plain.to_owned()),
    }
}

pub(crate) fn is_bidi_override(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}
