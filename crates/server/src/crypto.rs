//! Encryption at rest for third-party credentials.
//!
//! XChaCha20-Poly1305 under a key derived from the application key, in a versioned envelope
//! `v1.<base64url(nonce ‖ ciphertext)>`. The associated data names the row a ciphertext
//! belongs to, so a ciphertext copied into another row (another project) fails to open.
//! A future `v2` can change algorithm or key without touching stored `v1` values.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretString};

use crate::app_key::AppKey;

const VERSION: &str = "v1.";
const NONCE_LEN: usize = 24;
const KEY_PURPOSE: &str = "credentials-encryption-v1";

#[derive(Debug, thiserror::Error)]
#[error("a stored credential could not be decrypted (wrong application key, or tampered data)")]
pub struct DecryptError;

fn cipher(key: &AppKey) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(&key.derive(KEY_PURPOSE).into())
}

/// Encrypts `secret` for the row named by `row`.
pub fn seal(key: &AppKey, secret: &SecretString, row: &str) -> String {
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let payload = Payload {
        msg: secret.expose_secret().as_bytes(),
        aad: row.as_bytes(),
    };
    let ciphertext = cipher(key)
        .encrypt(&nonce, payload)
        .expect("encryption with a valid key cannot fail");
    let mut sealed = nonce.to_vec();
    sealed.extend_from_slice(&ciphertext);
    format!("{VERSION}{}", URL_SAFE_NO_PAD.encode(sealed))
}

/// Decrypts an envelope made by [`seal`] for the same row.
pub fn open(key: &AppKey, envelope: &str, row: &str) -> Result<SecretString, DecryptError> {
    let encoded = envelope.strip_prefix(VERSION).ok_or(DecryptError)?;
    let sealed = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| DecryptError)?;
    if sealed.len() < NONCE_LEN {
        return Err(DecryptError);
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let payload = Payload {
        msg: ciphertext,
        aad: row.as_bytes(),
    };
    let plain = cipher(key)
        .decrypt(XNonce::from_slice(nonce), payload)
        .map_err(|_| DecryptError)?;
    String::from_utf8(plain)
        .map(SecretString::from)
        .map_err(|_| DecryptError)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AppKey {
        let dir = tempfile::tempdir().unwrap();
        AppKey::load_or_create(&dir.path().join("k")).unwrap()
    }

    #[test]
    fn a_sealed_secret_opens_only_for_its_row_and_key() {
        let key = key();
        let secret = SecretString::from("mixpanel-secret-123".to_owned());
        let sealed = seal(&key, &secret, "mixpanel_connection:prj_a");
        assert!(sealed.starts_with("v1."));
        assert!(!sealed.contains("mixpanel-secret-123"));
        let opened = open(&key, &sealed, "mixpanel_connection:prj_a").unwrap();
        assert_eq!(opened.expose_secret(), "mixpanel-secret-123");
        assert!(
            open(&key, &sealed, "mixpanel_connection:prj_b").is_err(),
            "bound to its row"
        );
        assert!(
            open(&self::key(), &sealed, "mixpanel_connection:prj_a").is_err(),
            "bound to its key"
        );
    }

    #[test]
    fn the_same_secret_seals_differently_each_time_and_tampering_is_detected() {
        let key = key();
        let secret = SecretString::from("s".to_owned());
        let a = seal(&key, &secret, "row");
        let b = seal(&key, &secret, "row");
        assert_ne!(a, b, "a fresh nonce each time");
        let mut tampered = a.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(open(&key, std::str::from_utf8(&tampered).unwrap(), "row").is_err());
        assert!(open(&key, "v2.abc", "row").is_err());
        assert!(open(&key, "v1.", "row").is_err());
    }
}
