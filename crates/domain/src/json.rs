//! JSON text as clients send it.

/// The integer a JSON number written as a float names (`5.0`, `1e2`), while a float holds
/// it exactly (below 2^53; past it, it may have been rounded); `None` for a fraction.
pub fn whole_number(f: f64) -> Option<i64> {
    const EXACT: f64 = 9_007_199_254_740_992.0;
    (f.fract() == 0.0 && f.abs() < EXACT).then_some(f as i64)
}

/// `body` with each escaped half of a UTF-16 surrogate pair that stands alone (`\ud83d`
/// not followed by its low half: a string cut in the middle of an emoji) replaced by
/// `\ufffd`, of the same length, so serde_json's positions still hold; `None` when it has
/// none. serde_json refuses such a half; UTF-8 has no way to write one, and a browser's
/// `TextEncoder` writes U+FFFD for it too. A cohort sync's 400 would pause the customer's
/// whole sync, even for a property we do not keep, and an app's would lose its event.
pub fn repair_lone_surrogates(body: &[u8]) -> Option<Vec<u8>> {
    let high = |unit: u16| (0xD800..0xDC00).contains(&unit);
    let low = |unit: u16| (0xDC00..0xE000).contains(&unit);
    let mut repaired: Option<Vec<u8>> = None;
    let mut in_string = false;
    let mut at = 0;
    while at < body.len() {
        match body[at] {
            b'"' => {
                in_string = !in_string;
                at += 1;
            }
            b'\\' if in_string => match utf16_escape(body, at) {
                Some(unit) if high(unit) && utf16_escape(body, at + 6).is_some_and(low) => {
                    at += 12;
                }
                Some(unit) if high(unit) || low(unit) => {
                    repaired.get_or_insert_with(|| body.to_vec())[at..at + 6]
                        .copy_from_slice(br"\ufffd");
                    at += 6;
                }
                // Any other escape: its first two bytes are all that could be read as a
                // quote or a backslash (`\"`, `\\`).
                _ => at += 2,
            },
            _ => at += 1,
        }
    }
    repaired
}

/// The UTF-16 code unit of the `\uXXXX` escape at `at`.
fn utf16_escape(body: &[u8], at: usize) -> Option<u16> {
    let hex = body.get(at..at + 6)?.strip_prefix(br"\u")?;
    if !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u16::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// A string cut in the middle of an emoji leaves half of a UTF-16 pair, which serde_json
    /// refuses: the half becomes U+FFFD instead of a 400.
    #[test]
    fn lone_surrogate_escapes_become_replacement_characters() {
        let cases: [(&str, &str); 6] = [
            (r#""a\ud83d""#, r#""a\ufffd""#),
            (r#""\ude00b""#, r#""\ufffdb""#),
            (r#""\ud83d\u0041""#, r#""\ufffd\u0041""#),
            (r#""\ud83d\ud83d\ude00""#, r#""\ufffd\ud83d\ude00""#),
            (r#"{"k\uDBFF": "\\\ud800"}"#, r#"{"k\ufffd": "\\\ufffd"}"#),
            (r#"["\"\ud83d", "x"]"#, r#"["\"\ufffd", "x"]"#),
        ];
        for (body, repaired) in cases {
            let fixed = repair_lone_surrogates(body.as_bytes()).expect(body);
            assert_eq!(std::str::from_utf8(&fixed).unwrap(), repaired, "{body}");
            serde_json::from_slice::<Value>(&fixed).unwrap();
        }
        // Nothing to repair: a whole pair, an escaped backslash before `u`, text outside
        // strings.
        for body in [
            r#""\ud83d\ude00""#,
            r#""\\ud83d""#,
            r#""\\\\ud83d""#,
            r#"{"a": 1} \ud83d"#,
            "\"\u{1F600}\"",
        ] {
            assert_eq!(repair_lone_surrogates(body.as_bytes()), None, "{body}");
        }
    }
}
