//! The SDK path's point reads on SQLite, made on the calling thread.
//!
//! sqlx runs each SQLite connection on a thread of its own: a query is a message to that
//! thread, every row one back, and returning the connection to the pool a ping there and
//! back. For the reads every SDK request makes (the user's invites, their memberships:
//! index seeks answered from the page cache in microseconds) those thread hand-offs cost
//! ten times the read (`docs/benchmarks.md`). These reads use rusqlite on the same SQLite
//! library instead, on the async worker that asks: WAL readers never wait for the writer,
//! and a short busy timeout bounds the rare wait (WAL recovery) before the store reports
//! itself unavailable.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::StoreError;

/// How long a read waits for a lock (only WAL recovery takes one readers wait for).
const BUSY_TIMEOUT: Duration = Duration::from_millis(250);
/// Idle connections kept; more are opened while more threads read at once.
const KEPT: usize = 8;

/// Read-only connections to one SQLite file, lent to one call at a time.
#[derive(Debug)]
pub(crate) struct InlineReader {
    path: PathBuf,
    /// `None` once closed: later reads fail as if the database had gone away.
    idle: Mutex<Option<Vec<Connection>>>,
}

impl InlineReader {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            idle: Mutex::new(Some(Vec::new())),
        }
    }

    /// Runs `read` on an idle connection (opening one if none is idle).
    pub(crate) fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let taken = match self.idle.lock().expect("poisoned").as_mut() {
            None => return Err(closed()),
            Some(idle) => idle.pop(),
        };
        let connection = match taken {
            Some(connection) => connection,
            None => self.open().map_err(from_rusqlite)?,
        };
        let result = read(&connection);
        // A connection still inside a transaction (a rollback that failed) would hold its
        // snapshot, and every checkpoint behind it, for as long as it is kept: closed instead.
        if !connection.is_autocommit() {
            return result;
        }
        if let Some(idle) = self.idle.lock().expect("poisoned").as_mut() {
            if idle.len() < KEPT {
                idle.push(connection);
            }
        }
        result
    }

    /// `Ok` unless closed: what a read answers without reading.
    pub(crate) fn check_open(&self) -> Result<(), StoreError> {
        match self.idle.lock().expect("poisoned").as_ref() {
            Some(_) => Ok(()),
            None => Err(closed()),
        }
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let connection = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // No `mmap_size`: SQLite unmaps the whole file whenever another connection has
        // written since, which under the SDK's steady invite writes cost more (page
        // faults, TLB shootdowns) than the copies it saves.
        connection.busy_timeout(BUSY_TIMEOUT)?;
        Ok(connection)
    }

    /// Drops the idle connections; later reads fail.
    pub(crate) fn close(&self) {
        self.idle.lock().expect("poisoned").take();
    }
}

fn closed() -> StoreError {
    StoreError::Unavailable("the database was closed".into())
}

/// A busy, locked, read-only, unreadable or vanished file is the database being
/// unavailable, as sqlx's errors are taken (`error.rs`); other errors are bugs or corruption.
pub(crate) fn from_rusqlite(error: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::*;
    match error.sqlite_error_code() {
        Some(
            DatabaseBusy | DatabaseLocked | ReadOnly | SystemIoFailure | DiskFull | CannotOpen,
        ) => StoreError::Unavailable(error.into()),
        _ => StoreError::Database(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file that became read-only is the database being unavailable (503, retried) on the
    /// rusqlite paths as on sqlx's; it was a database error (500).
    #[test]
    fn a_read_only_file_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ro.db");
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t (x INTEGER)")
            .unwrap();
        let read_only = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let error = read_only
            .execute("INSERT INTO t VALUES (1)", [])
            .unwrap_err();
        assert!(
            matches!(from_rusqlite(error), StoreError::Unavailable(_)),
            "read-only"
        );
    }
}
