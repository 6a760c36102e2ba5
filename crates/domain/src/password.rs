//! Argon2id password hashing (PHC strings, OWASP default parameters).

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, SaltString};
use argon2::{Argon2, PasswordVerifier};
use secrecy::{ExposeSecret, SecretString};

use std::sync::OnceLock;

use crate::keys::NewToken;
use crate::ValidationError;

const MIN_CHARS: usize = 10;
/// Long enough for any passphrase, short enough that hashing cannot be used to burn CPU.
const MAX_CHARS: usize = 256;

/// A password that meets the policy. Never printed: `Debug` is redacted by `SecretString`.
#[derive(Debug)]
pub struct Password(SecretString);

impl Password {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let chars = raw.chars().count();
        if chars < MIN_CHARS {
            return Err(ValidationError::new(
                "password",
                format!("must be at least {MIN_CHARS} characters"),
            ));
        }
        if chars > MAX_CHARS {
            return Err(ValidationError::new(
                "password",
                format!("must be at most {MAX_CHARS} characters"),
            ));
        }
        // Ten characters of nothing to see, or of one key held down, are no password
        // (found by the accounts probe: ten spaces, ten U+200B and "aaaaaaaaaa" were taken).
        if raw
            .chars()
            .all(|c| c.is_whitespace() || crate::validation::shows_nothing(c))
        {
            return Err(ValidationError::new(
                "password",
                "must contain characters other than spaces and invisible ones",
            ));
        }
        let mut chars = raw.chars();
        let first = chars.next();
        if chars.all(|c| Some(c) == first) {
            return Err(ValidationError::new(
                "password",
                "must not be one character repeated",
            ));
        }
        Ok(Self(SecretString::from(raw.to_owned())))
    }

    /// A password just verified against its account's stored hash, whatever today's policy
    /// says of it (one set before a rule was added still signs in, and is hashed anew).
    pub fn verified(raw: &str) -> Self {
        Self(SecretString::from(raw.to_owned()))
    }

    /// The Argon2id PHC string to store. CPU-heavy: call from a blocking thread.
    pub fn hash(&self) -> String {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(self.0.expose_secret().as_bytes(), &salt)
            .expect("argon2 with default parameters cannot fail")
            .to_string()
    }
}

/// Checks `candidate` against a stored PHC string. With `None` (unknown account) it
/// verifies against a fixed hash anyway, so both paths cost the same time.
/// CPU-heavy: call from a blocking thread.
pub fn verify(stored: Option<&str>, candidate: &str) -> bool {
    // The hash of a random password nobody knows, made once with the same parameters.
    static DUMMY: OnceLock<String> = OnceLock::new();
    let (phc, known) = match stored {
        Some(phc) => (phc, true),
        None => (
            DUMMY
                .get_or_init(|| {
                    Password(SecretString::from(
                        NewToken::generate("").token.expose_secret().to_owned(),
                    ))
                    .hash()
                })
                .as_str(),
            false,
        ),
    };
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let matches = Argon2::default()
        .verify_password(candidate.as_bytes(), &parsed)
        .is_ok();
    matches && known
}

/// Whether a stored PHC string was made as [`Password::hash`] makes one now: Argon2id,
/// version 0x13, today's parameters. One that was not is hashed anew at its next sign-in
/// (OWASP's password storage advice: parameters raised later reach every account that signs
/// in). An unreadable string is not current either.
pub fn is_current(stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let current = Argon2::default();
    parsed.algorithm == argon2::Algorithm::Argon2id.ident()
        && parsed.version == Some(argon2::Version::V0x13.into())
        && argon2::Params::try_from(&parsed).is_ok_and(|params| {
            let now = current.params();
            (params.m_cost(), params.t_cost(), params.p_cost())
                == (now.m_cost(), now.t_cost(), now.p_cost())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hashed_password_verifies_and_a_wrong_one_does_not() {
        let password = Password::parse("correct horse battery").unwrap();
        let phc = password.hash();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify(Some(&phc), "correct horse battery"));
        assert!(!verify(Some(&phc), "correct horse battery!"));
        assert!(!verify(None, "correct horse battery"));
    }

    #[test]
    fn a_hash_of_other_parameters_or_algorithm_is_not_current() {
        let password = Password::parse("correct horse battery").unwrap();
        assert!(is_current(&password.hash()));
        let salt = SaltString::generate(&mut OsRng);
        let weaker = argon2::Params::new(8 * 1024, 2, 1, None).unwrap();
        let older = [
            Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, weaker),
            Argon2::new(
                argon2::Algorithm::Argon2i,
                argon2::Version::V0x13,
                argon2::Params::default(),
            ),
            Argon2::new(
                argon2::Algorithm::Argon2id,
                argon2::Version::V0x10,
                argon2::Params::default(),
            ),
        ];
        for hasher in older {
            let phc = hasher
                .hash_password(b"correct horse battery", &salt)
                .unwrap()
                .to_string();
            assert!(verify(Some(&phc), "correct horse battery"), "{phc}");
            assert!(!is_current(&phc), "{phc}");
        }
        assert!(!is_current("$argon2id$fake"));
    }

    #[test]
    fn short_and_huge_passwords_are_rejected_with_the_field_named() {
        let short = Password::parse("short").unwrap_err();
        assert_eq!(short.field, "password");
        assert!(Password::parse(&"xy".repeat(129)).is_err());
        assert!(Password::parse(&"xy".repeat(128)).is_ok());
    }

    #[test]
    fn blank_and_one_key_passwords_are_rejected() {
        for blank in [
            " ".repeat(10),
            "\u{200B}".repeat(10),
            " \u{3000}".repeat(5),
            "\u{200C}\u{200D}".repeat(5),
            "\u{FE0F}\u{200E}".repeat(5),
        ] {
            let refused = Password::parse(&blank).unwrap_err();
            assert!(refused.message.contains("other than spaces"), "{blank:?}");
        }
        let refused = Password::parse(&"a".repeat(10)).unwrap_err();
        assert!(refused.message.contains("one character repeated"));
        assert!(Password::parse("aaaaaaaaab").is_ok());
        assert!(Password::parse("  padded password  ").is_ok());
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let password = Password::parse("correct horse battery").unwrap();
        assert!(!format!("{password:?}").contains("horse"));
    }
}
