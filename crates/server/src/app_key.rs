//! The application key: 256 random bits in a file readable only by the server's user.
//! It signs CSRF tokens and launch URLs now and encrypts stored third-party credentials
//! once there are any. Lose it and those can no longer be read or verified.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;
use hmac::{Hmac, Mac};
use rand::{rngs::OsRng, RngCore};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone)]
pub struct AppKey([u8; 32]);

impl fmt::Debug for AppKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AppKey([redacted])")
    }
}

impl AppKey {
    /// Reads the key at `path`, creating it (mode 0600) on first run.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        match Self::load(path)? {
            Some(key) => Ok(key),
            None => Self::create(path),
        }
    }

    /// Reads the key at `path`; `None` when there is no such file.
    pub fn load(path: &Path) -> anyhow::Result<Option<Self>> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text).map(Some).with_context(|| {
                format!("{} does not hold a valid application key", path.display())
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes a new key beside `path`, then links it into place: the file appears whole or
    /// not at all, so a process starting at the same moment reads either nothing (and
    /// links its own, which fails) or the complete key.
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let mut nonce = [0u8; 8];
        OsRng.fill_bytes(&mut nonce);
        let mut draft = path.as_os_str().to_owned();
        draft.push(format!(".{}.new", hex::encode(nonce)));
        let draft = std::path::PathBuf::from(draft);
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&draft)
            .and_then(|mut file| {
                writeln!(file, "{}", hex::encode(bytes))?;
                file.sync_all()
            });
        let linked = written.and_then(|()| std::fs::hard_link(&draft, path));
        let _ = std::fs::remove_file(&draft);
        match linked {
            Ok(()) => {
                tracing::info!(path = %path.display(), "generated a new application key");
                Ok(Self(bytes))
            }
            // Another process created it first: use theirs.
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                Self::load_or_create(path)
            }
            Err(error) => Err(error).with_context(|| format!("cannot create {}", path.display())),
        }
    }

    fn parse(text: &str) -> anyhow::Result<Self> {
        let bytes = hex::decode(text.trim()).context("not hex")?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("expected 64 hex characters"))?;
        Ok(Self(bytes))
    }

    fn mac(&self, purpose: &str, message: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        // The purpose separates domains: a tag made for one use never verifies for another.
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(message);
        mac
    }

    /// A hex HMAC-SHA256 tag over `message` for `purpose`.
    pub fn sign(&self, purpose: &str, message: &[u8]) -> String {
        hex::encode(self.mac(purpose, message).finalize().into_bytes())
    }

    /// A 256-bit key for one purpose, derived from the application key (HMAC-SHA256), so
    /// no two uses share key material.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        self.mac("derive", purpose.as_bytes())
            .finalize()
            .into_bytes()
            .into()
    }

    /// Names this key without revealing it (an HMAC of a constant): what the database
    /// records to recognise the key it belongs to.
    pub fn fingerprint(&self) -> String {
        self.sign("fingerprint", b"userjourneys application key")[..32].to_owned()
    }

    /// Checks a tag from [`AppKey::sign`] in constant time.
    pub fn verify(&self, purpose: &str, message: &[u8], tag: &str) -> bool {
        match hex::decode(tag) {
            Ok(tag) => self.mac(purpose, message).verify_slice(&tag).is_ok(),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_key_is_created_once_with_owner_only_permissions_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/userjourneys.key");
        let first = AppKey::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let second = AppKey::load_or_create(&path).unwrap();
        assert_eq!(first.0, second.0);
    }

    /// Processes starting at once on a new key file all end up with the one key, none
    /// reading a file half written.
    #[test]
    fn keys_created_at_once_are_one_key() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("userjourneys.key");
            let keys: Vec<[u8; 32]> = std::thread::scope(|scope| {
                let started: Vec<_> = (0..8)
                    .map(|_| scope.spawn(|| AppKey::load_or_create(&path).map(|k| k.0)))
                    .collect();
                started
                    .into_iter()
                    .map(|t| t.join().unwrap().unwrap())
                    .collect()
            });
            assert!(keys.iter().all(|k| *k == keys[0]));
            let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
            assert_eq!(left.len(), 1, "no draft left behind");
        }
    }

    #[test]
    fn a_corrupt_key_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("userjourneys.key");
        std::fs::write(&path, "not a key").unwrap();
        let error = AppKey::load_or_create(&path).unwrap_err();
        assert!(format!("{error:#}").contains("valid application key"));
    }

    #[test]
    fn tags_verify_only_for_their_purpose_and_message() {
        let key = AppKey([7; 32]);
        let tag = key.sign("csrf", b"abc");
        assert!(key.verify("csrf", b"abc", &tag));
        assert!(!key.verify("launch", b"abc", &tag));
        assert!(!key.verify("csrf", b"abd", &tag));
        assert!(!key.verify("csrf", b"abc", "zz"));
        assert!(!format!("{key:?}").contains('7'));
    }
}
