//! `userjourneys admin backup --to DIR`: a consistent copy of a SQLite database, taken
//! while the server runs, together with the application key file (without it the copy's
//! Mixpanel secrets cannot be decrypted and signed links do not verify). PostgreSQL is
//! backed up with its own tools (`pg_dump`); see `docs/backup.md`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Serialize;
use uj_storage::{Backend, SqliteStore};

use crate::config::Config;

#[derive(Debug, Serialize)]
pub struct BackupOutput {
    pub database: PathBuf,
    pub key_file: PathBuf,
}

pub async fn run(config: &Config, to: &Path) -> anyhow::Result<BackupOutput> {
    let key = config.secret_key_path();
    if Backend::of(&config.database_url)? == Backend::Postgres {
        bail!(
            "the database is PostgreSQL: back it up with pg_dump (see docs/backup.md), and keep a copy of the key file {}",
            key.display()
        );
    }
    let source = SqliteStore::file_of(&config.database_url)?;
    if !source.exists() {
        bail!(
            "no database at {}: check DATABASE_URL (the backup creates nothing)",
            source.display()
        );
    }
    let Some(app_key) = crate::app_key::AppKey::load(&key)? else {
        bail!(
            "no application key at {}: has the server run with this configuration?",
            key.display()
        );
    };
    // A copy with another key could not be restored: its sealed secrets would not open.
    let recorded = SqliteStore::recorded_key_fingerprint(&config.database_url).await?;
    // Not recorded yet (a database from before migration 0015): known by what it sealed.
    let sealed = match recorded {
        Some(_) => Vec::new(),
        None => SqliteStore::sealed_secrets(&config.database_url).await?,
    };
    let sealed = sealed.iter().map(|(p, s)| (p.as_str(), s.as_str()));
    if recorded.is_some_and(|recorded| recorded != app_key.fingerprint())
        || !crate::services::mixpanel::sealed_with(&app_key, sealed)
    {
        bail!(
            "the application key in {} is not this database's key: a copy with it could not be \
             restored. Point UJ_SECRET_KEY_FILE at the key the server runs with",
            key.display()
        );
    }
    // The directories made for it are the owner's only, whatever the umask: anyone who could
    // write in one could swap the key or the copy before a restore.
    let mut directories = std::fs::DirBuilder::new();
    directories.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut directories, 0o700);
    directories
        .create(to)
        .with_context(|| format!("cannot create {}", to.display()))?;
    let database = to.join("userjourneys.db");
    let key_file = to.join("app.key");
    for path in [&database, &key_file] {
        if path.exists() {
            bail!(
                "{} exists already: back up into an empty directory",
                path.display()
            );
        }
    }
    SqliteStore::backup(&config.database_url, &database)
        .await
        .context("the database could not be copied")?;
    // The copy holds what the database does (sessions, sealed secrets): `backup` makes it the
    // owner's only.
    copy_private(&key, &key_file)?;
    Ok(BackupOutput { database, key_file })
}

/// Copies the key file, readable by its owner only.
fn copy_private(from: &Path, to: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(from).with_context(|| format!("cannot read {}", from.display()))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(to)
        .with_context(|| format!("cannot create {}", to.display()))?;
    std::io::Write::write_all(&mut file, &bytes)?;
    file.sync_all()?;
    Ok(())
}
