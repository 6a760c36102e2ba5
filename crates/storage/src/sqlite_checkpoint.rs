//! WAL checkpoints off the writer's path.
//!
//! By default the connection whose commit takes the WAL past 1000 pages copies them back
//! into the database file (and syncs it) inside that commit. With one writer connection
//! for everything, that stalls every write queued behind it: group-committed invites,
//! cohort-sync pages. Instead a thread of its own checkpoints the file every
//! [`INTERVAL`] with `PRAGMA wal_checkpoint(PASSIVE)`, which never blocks the writer or
//! readers; the writer keeps automatic checkpoints only as a backstop at
//! [`WRITER_AUTOCHECKPOINT`] pages, should this thread fall behind.

use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// How often the thread checkpoints.
const INTERVAL: Duration = Duration::from_millis(100);
/// The writer's own automatic checkpoint, in pages (SQLite's default is 1000).
pub(crate) const WRITER_AUTOCHECKPOINT: u32 = 10_000;

/// The checkpointing thread; it stops when this is closed or dropped.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    stop: Mutex<Option<Sender<()>>>,
}

impl Checkpointer {
    pub(crate) fn start(path: PathBuf) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                let connection = match Connection::open_with_flags(
                    &path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                ) {
                    Ok(connection) => connection,
                    Err(error) => {
                        tracing::warn!(%error, "WAL checkpoints fall back to the writer");
                        return;
                    }
                };
                // A disconnected channel (the store closed or dropped) ends the loop.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                    let done =
                        connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    if let Err(error) = done {
                        tracing::debug!(%error, "WAL checkpoint skipped");
                    }
                }
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "WAL checkpoints fall back to the writer");
        }
        Self {
            stop: Mutex::new(Some(stop)),
        }
    }

    /// Stops the thread (it finishes a checkpoint under way).
    pub(crate) fn close(&self) {
        self.stop.lock().expect("poisoned").take();
    }
}
