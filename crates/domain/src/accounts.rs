//! Dashboard accounts and their roles in projects.

use chrono::{DateTime, Utc};

use crate::ids::AccountId;
use crate::validation::{address, bounded_text};
use crate::ValidationError;

/// A syntactically plausible, normalised email address: trimmed, in Unicode's compatibility
/// form (NFKC: `zoe\u{0308}` is `zoë`, fullwidth `ｂob` is `bob`), lower-cased, its domain in
/// the ASCII form DNS uses (`müller.example` is `xn--mller-kva.example`), as a browser's
/// email field sent it: an address is one account however it was typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// A new address: shown as people read it, so an invisible character (which would make
    /// a lookalike account) is refused.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        Self::read(address("email", raw, 254)?)
    }

    /// An address to find an existing account by: as [`Email::parse`], but an invisible
    /// character is kept, so an account made before they were refused still signs in.
    pub fn lookup(raw: &str) -> Result<Self, ValidationError> {
        Self::read(bounded_text("email", raw, 254)?)
    }

    /// The address as accounts made before addresses were put in Unicode's compatibility
    /// form stored it, when that differs from [`Email::lookup`]'s: such an account still
    /// signs in as it was typed then.
    pub fn stored_before_nfkc(raw: &str) -> Option<String> {
        let before = Self::cased(bounded_text("email", raw, 254).ok()?.to_lowercase());
        // Also when the compatibility form is no address at all (a spacing accent becomes a
        // space and a combining mark, `＠` an `@`): found by the session's review.
        match Self::lookup(raw) {
            Ok(now) if now.0 == before => None,
            _ => Some(before),
        }
    }

    fn read(email: String) -> Result<Self, ValidationError> {
        use unicode_normalization::UnicodeNormalization;
        // Lookalikes that are one address (a decomposed ë, fullwidth letters: found by the
        // accounts probe) become one before anything else is judged.
        let email: String = email
            .nfkc()
            .collect::<String>()
            .to_lowercase()
            .nfc()
            .collect();
        let email = Self::cased(email);
        Self::valid(email)
    }

    /// The domain in DNS's ASCII form.
    fn cased(email: String) -> String {
        match email.rsplit_once('@') {
            Some((local, domain)) => match idna::domain_to_ascii(domain) {
                Ok(ascii) => format!("{local}@{ascii}"),
                Err(_) => email,
            },
            None => email,
        }
    }

    fn valid(email: String) -> Result<Self, ValidationError> {
        let valid = match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains('@')
                    && !email.chars().any(char::is_whitespace)
            }
            None => false,
        };
        if !valid {
            return Err(ValidationError::new(
                "email",
                "must be an email address like name@example.com",
            ));
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What an account may do in a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Created the project; may invite others.
    Owner,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Member => "member",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "owner" => Some(Role::Owner),
            "member" => Some(Role::Member),
            _ => None,
        }
    }
}

/// A stored account. The password hash stays inside the storage and login code.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: AccountId,
    pub email: String,
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
        // One address however its letters were composed or how wide (found by the accounts
        // probe: each was an account of its own beside the other).
        for (typed, address) in [
            ("zoe\u{0308}@example.com", "zo\u{eb}@example.com"),
            ("ZO\u{cb}@example.com", "zo\u{eb}@example.com"),
            ("\u{ff42}ob@example.com", "bob@example.com"),
            ("\u{ff22}OB@\u{ff45}xample.com", "bob@example.com"),
        ] {
            assert_eq!(Email::parse(typed).unwrap().as_str(), address, "{typed}");
            assert_eq!(Email::lookup(typed).unwrap().as_str(), address, "{typed}");
        }
        // Accounts stored before, as they were typed then, are still found.
        assert_eq!(
            Email::stored_before_nfkc("zoe\u{0308}@Example.com").as_deref(),
            Some("zoe\u{0308}@example.com")
        );
        assert_eq!(Email::stored_before_nfkc("zo\u{eb}@example.com"), None);
        for typed in ["jo\u{b4}e@example.com", "a\u{ff20}b@example.com"] {
            assert!(Email::lookup(typed).is_err(), "{typed}");
            assert_eq!(
                Email::stored_before_nfkc(typed).as_deref(),
                Some(typed),
                "{typed}"
            );
        }
    }

    #[test]
    fn implausible_emails_are_rejected() {
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "ada@.com",
            "ada\u{200b}@example.com",
            "\u{feff}ada@example.com",
            // Lookalikes of bob@example.com (found by the team probe).
            "bob\u{034f}@example.com",
            "bob\u{fe0f}@example.com",
            "bob\u{115f}@example.com",
            "bob\u{3164}@example.com",
            "bob\u{2800}@example.com",
            "bob\u{180b}@example.com",
            "bob\u{200d}@example.com",
            "bob\u{200f}@example.com",
            "bob\u{e0062}@example.com",
        ] {
            let err = Email::parse(bad).unwrap_err();
            assert_eq!(err.field, "email", "{bad}");
        }
    }

    /// A domain of another script is one account however it is typed: as a browser's email
    /// field sent it (punycode), in Unicode, or with its accent as a combining character.
    #[test]
    fn an_address_is_one_account_however_its_domain_is_typed() {
        let forms = [
            "Anna@Müller.example",
            "anna@xn--mller-kva.example",
            "anna@mu\u{308}ller.example",
        ];
        for form in forms {
            assert_eq!(
                Email::parse(form).unwrap().as_str(),
                "anna@xn--mller-kva.example",
                "{form}"
            );
        }
        assert_eq!(
            Email::parse("zoë@example.com").unwrap().as_str(),
            "zoë@example.com"
        );
    }

    #[test]
    fn roles_round_trip() {
        for role in [Role::Owner, Role::Member] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("admin"), None);
    }
}
