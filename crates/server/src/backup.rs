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
    make_private_directories(to)?;
    let database = to.join("userjourneys.db");
    let key_file = to.join("app.key");
    // A symbolic link counts, pointing anywhere.
    for file in [&database, &key_file] {
        if file.symlink_metadata().is_ok() {
            bail!(
                "{} exists already: back up into an empty directory",
                file.display()
            );
        }
    }
    // The copy is written under a name of its own and given its real one once complete, with
    // its key beside it: a backup cut short (a signal, a cron job's timeout) leaves no
    // `userjourneys.db` that would restore as a new, empty installation. Made new (never a
    // file there already, nor one a link points to), the owner's only.
    let partial = to.join(format!(
        "userjourneys.db.partial-{}",
        uj_domain::keys::random_code(10)
    ));
    create_new_private(&partial)?;
    let cleanup = |also_key: bool| {
        let _ = std::fs::remove_file(&partial);
        if also_key {
            let _ = std::fs::remove_file(&key_file);
        }
    };
    // Absolute: SQLite reads a target starting with `file:` as a URI.
    let target = std::path::absolute(&partial)
        .with_context(|| format!("cannot resolve {}", partial.display()))?;
    if let Err(error) = SqliteStore::backup(&config.database_url, &target).await {
        cleanup(false);
        let cause = std::error::Error::source(&error).map_or(error.to_string(), |c| c.to_string());
        bail!(
            "the database could not be copied into {}: {cause}",
            database.display()
        );
    }
    if let Err(error) = copy_private(&key, &key_file) {
        // A copy without its key is no backup.
        cleanup(false);
        return Err(error);
    }
    // Named only if the name is free (a rename would replace a copy another backup into
    // the directory named meanwhile): a second name, then the first one gone. A filesystem
    // without hard links (vfat, exFAT, some network mounts) gets a rename, the name looked
    // at just before.
    let named = match std::fs::hard_link(&partial, &database) {
        Ok(()) => {
            // Complete with its name: a partial name left (an error here) is only a second
            // name of the copy.
            let _ = std::fs::remove_file(&partial);
            Ok(())
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Err(error),
        Err(_) if database.symlink_metadata().is_err() => std::fs::rename(&partial, &database),
        Err(error) => Err(error),
    };
    if let Err(error) = named {
        cleanup(true);
        return Err(match error.kind() {
            std::io::ErrorKind::AlreadyExists => anyhow::anyhow!(
                "{} exists already: back up into an empty directory",
                database.display()
            ),
            _ => anyhow::Error::new(error).context(format!("cannot create {}", database.display())),
        });
    }
    // The names made durable: a crash now keeps them.
    std::fs::File::open(to)
        .and_then(|directory| directory.sync_all())
        .with_context(|| {
            format!(
                "the copy and its key are written, but {} could not be synced to disk",
                to.display()
            )
        })?;
    Ok(BackupOutput { database, key_file })
}

/// Makes `to` and the directories above it that are missing, each the owner's only whatever
/// the umask: anyone who could write in one could swap the key or the copy before a restore.
fn make_private_directories(to: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let missing: Vec<&Path> = to
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .collect();
    for directory in missing.into_iter().rev() {
        match std::fs::create_dir(directory) {
            Ok(()) => std::fs::set_permissions(directory, std::fs::Permissions::from_mode(0o700)),
            // Made meanwhile by a backup into the same directory: its files decide.
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(error) => Err(error),
        }
        .with_context(|| format!("cannot create {}", directory.display()))?;
    }
    Ok(())
}

/// Creates `path`, empty and readable by its owner only; one there already is another
/// backup's.
fn create_new_private(path: &Path) -> anyhow::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::AlreadyExists => anyhow::anyhow!(
                "{} exists already: back up into an empty directory",
                path.display()
            ),
            _ => anyhow::Error::new(error).context(format!("cannot create {}", path.display())),
        })
}

/// Copies the key file, readable by its owner only; a copy cut short is removed.
fn copy_private(from: &Path, to: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(from).with_context(|| format!("cannot read {}", from.display()))?;
    let mut file = create_new_private(to)?;
    let written = std::io::Write::write_all(&mut file, &bytes).and_then(|()| file.sync_all());
    if let Err(error) = written {
        let _ = std::fs::remove_file(to);
        return Err(anyhow::Error::new(error).context(format!("cannot write {}", to.display())));
    }
    Ok(())
}
