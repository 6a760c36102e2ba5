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
        return Err(invisible(field));
    }
    Ok(name)
}

fn invisible(field: &'static str) -> ValidationError {
    ValidationError::new(
        field,
        "must not contain invisible characters (such as U+200B, U+034F or the Hangul filler U+3164)",
    )
}

/// An email address as [`name`] takes it, without the characters that are invisible in an
/// address though a name may need them (joiners, direction marks, Mongolian variation
/// selectors, and the variation selectors and tags emoji use): `bob\u{200D}@example.com`
/// would show as bob@example.com, another account.
pub fn address(
    field: &'static str,
    raw: &str,
    max_chars: usize,
) -> Result<String, ValidationError> {
    let address = name(field, raw, max_chars)?;
    if address.chars().any(invisible_in_addresses) {
        return Err(invisible(field));
    }
    Ok(address)
}

/// Invisible in an address, though a name may need them: joiners, direction marks,
/// Mongolian variation selectors, and the variation selectors and tags emoji use.
fn invisible_in_addresses(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{180B}'..='\u{180D}'
            | '\u{180F}'
            | '\u{200C}'..='\u{200F}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{E0000}'..='\u{E007F}'
            | '\u{E0100}'..='\u{E01EF}'
    )
}

/// Shows as nothing on its own: an invisible character of names or of addresses.
pub(crate) fn shows_nothing(c: char) -> bool {
    is_invisible(c) || invisible_in_addresses(c)
}

/// Whether an app can send `name` as an event: the SDK takes no other (a rule stored before
/// a character was refused in names may wait for one no app can send).
pub fn sendable_event(name: &str) -> bool {
    self::name("event_name", name, 255).is_ok()
}

/// Characters that show as nothing and mean nothing in a name: the soft hyphen, the
/// combining grapheme joiner, the Hangul and Khmer fillers, the Mongolian vowel separator,
/// zero-width spaces and invisible operators, the blank braille pattern, the byte order mark, musical
/// formatting (found by the team probe: `bob\u{034F}@example.com` was a second "bob").
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180E}'
            | '\u{200B}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{1D173}'..='\u{1D17A}'
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

/// Whether every bidirectional embedding, override and isolate in `text` is closed, in
/// order, on its own line: each LRE, RLE, LRO or RLO (U+202A, U+202B, U+202D, U+202E) by a
/// PDF (U+202C), each LRI, RLI or FSI (U+2066–U+2068) by a PDI (U+2069), and no closer
/// without its opener. A paragraph separator or line break ends them all (UAX #9, X8), so
/// one left open there is not closed by a closer on the next line. Copy in a right-to-left
/// language may need them; one left open reorders whatever the app shows after it.
pub(crate) fn bidi_balanced(text: &str) -> bool {
    let mut open: Vec<char> = Vec::new();
    for c in text.chars() {
        match c {
            '\u{202A}' | '\u{202B}' | '\u{202D}' | '\u{202E}' | '\u{2066}'..='\u{2068}' => {
                open.push(c)
            }
            '\u{202C}' if open.last().is_some_and(|o| !is_isolate(*o)) => {
                open.pop();
            }
            '\u{2069}' if open.last().copied().is_some_and(is_isolate) => {
                open.pop();
            }
            '\u{202C}' | '\u{2069}' => return false,
            c if ends_paragraph(c) && !open.is_empty() => return false,
            _ => {}
        }
    }
    open.is_empty()
}

fn is_isolate(c: char) -> bool {
    matches!(c, '\u{2066}'..='\u{2068}')
}

/// UAX #9's paragraph separators (bidi class B).
fn ends_paragraph(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{1C}'..='\u{1E}' | '\u{85}' | '\u{2029}')
}

#[cfg(test)]
mod tests {
    use super::{address, name};

    /// A name keeps what emoji are made of (variation selectors, tags, joiners) and refuses
    /// what only hides; an address refuses both.
    #[test]
    fn names_keep_emoji_and_refuse_invisible_fillers() {
        let emoji = "Love \u{2764}\u{fe0f} \u{1f3f4}\u{e0067}\u{e0062}\u{e0065}\u{e006e}\u{e0067}\u{e007f} \u{1f469}\u{200d}\u{1f4bb}";
        assert_eq!(name("name", emoji, 100).unwrap(), emoji);
        for hidden in [
            "Order\u{3164}Completed",
            "Order\u{034f} Completed",
            "\u{2800}Order",
        ] {
            assert!(name("name", hidden, 100).is_err(), "{hidden:?}");
        }
        // Mongolian spelling needs its variation selectors.
        assert!(name("name", "\u{182e}\u{1823}\u{180b}\u{1829}", 100).is_ok());
        for hidden in [
            "\u{fe0f}", "\u{200d}", "\u{200c}", "\u{200e}", "\u{200f}", "\u{61c}", "\u{180b}",
        ] {
            let address = format!("bob{hidden}@example.com");
            assert!(
                self::address("email", &address, 254).is_err(),
                "{address:?}"
            );
        }
        assert!(address("email", "bob@example.com", 254).is_ok());
    }
}
