//! WAL checkpoints off the writer's path.
//!
//! By default the connection whose commit takes the WAL past 1000 pages copies them back
//! into the database file (and syncs it) inside that commit. With one writer connection
//! for everything, that stalls every write queued behind it: group-committed invites,
//! cohort-sync pages. Instead a thread of its own checkpoints the file every [`BUSY`] while
//! the WAL grows (backing off to [`IDLE`] while it does not) with
//! `PRAGMA wal_checkpoint(PASSIVE)`, which never blocks the writer or readers. The writer
//! keeps automatic checkpoints as a backstop at [`WRITER_AUTOCHECKPOINT`] pages; that is
//! also where the WAL starts over from its beginning once a steady stream of writes never
//! leaves it fully copied back (docs/benchmarks.md has the measurements behind 10 ms and
//! 10,000 pages).

use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// How often the thread checkpoints while the WAL grows.
const BUSY: Duration = Duration::from_millis(10);
/// The longest wait between checkpoints while nothing is written.
const IDLE: Duration = Duration::from_secs(1);
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
                let mut wait = BUSY;
                let mut last = None;
                // A disconnected channel (the store closed or dropped) ends the loop.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(wait) {
                    // (busy, frames in the WAL, frames copied back)
                    let done = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                        Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
                    });
                    match done {
                        Ok(frames) if Some(frames) == last => wait = (wait * 2).min(IDLE),
                        Ok(frames) => {
                            last = Some(frames);
                            wait = BUSY;
                        }
                        Err(error) => tracing::debug!(%error, "WAL checkpoint skipped"),
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
