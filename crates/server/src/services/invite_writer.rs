//! Group commit for issued invites. Under load many config loads and app events issue
//! invites at once, and with SQLite's single writer each would wait for its own statement.
//! Requests hand their invite to one task, which issues every invite waiting at that moment
//! (and those handed in while it steps aside, `GATHER_ROUNDS`) in one transaction; an
//! invite whose user already has one issued (or a batch that failed) goes through the
//! one-by-one path, which settles it exactly as before.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};
use uj_domain::invites::Invite;
use uj_storage::{Store, StoreError};

/// At most this many invites share a statement.
const BATCH: usize = 200;

/// Before writing, the task steps aside this many times for the requests that are ready to
/// run, taking the invites they hand in into the same commit. Each commit costs the writer
/// its WAL frames and empties every SDK reader's page cache, so fewer, fuller commits save
/// CPU; stepping aside waits for nothing when nothing else is ready (unlike a fixed pause,
/// which cost app events a fifth of their throughput: docs/benchmarks.md).
const GATHER_ROUNDS: usize = 4;

/// What a request does with the user's pending invite once it is written, run by the
/// writer: it runs even when the request stopped waiting (its SDK deadline passed), so an
/// invite written is counted (found by the observability probe).
pub type OnIssued = Box<dyn FnOnce(&Invite) + Send>;

struct Job {
    invite: Invite,
    now: DateTime<Utc>,
    on_issued: OnIssued,
    reply: oneshot::Sender<Result<Invite, StoreError>>,
}

impl Job {
    fn answer(self, answer: Result<Invite, StoreError>) {
        if let Ok(issued) = &answer {
            (self.on_issued)(issued);
        }
        let _ = self.reply.send(answer);
    }
}

/// The handle requests issue invites through.
pub struct InviteWriter {
    jobs: mpsc::Sender<Job>,
    store: Arc<dyn Store>,
}

impl InviteWriter {
    /// Starts the writing task on the current runtime.
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (jobs, queue) = mpsc::channel(4 * BATCH);
        tokio::spawn(write(store.clone(), queue));
        Self { jobs, store }
    }

    /// Issues the invite unless its user has one issued already; returns the user's
    /// pending invite either way (like [`Store::issue_invite`]), after `on_issued` had it.
    pub async fn issue(
        &self,
        invite: Invite,
        now: DateTime<Utc>,
        on_issued: OnIssued,
    ) -> Result<Invite, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            invite,
            now,
            on_issued,
            reply,
        };
        match self.jobs.send(job).await {
            Ok(()) => match answer.await {
                Ok(answer) => answer,
                Err(_) => Err(StoreError::Corrupt("the invite writer stopped".into())),
            },
            // The task is gone (the runtime is shutting down): write it ourselves.
            Err(mpsc::error::SendError(job)) => {
                let answer = self.store.issue_invite(&job.invite, job.now).await;
                if let Ok(issued) = &answer {
                    (job.on_issued)(issued);
                }
                answer
            }
        }
    }
}

async fn write(store: Arc<dyn Store>, mut queue: mpsc::Receiver<Job>) {
    let mut jobs = Vec::with_capacity(BATCH);
    while queue.recv_many(&mut jobs, BATCH).await > 0 {
        for _ in 0..GATHER_ROUNDS {
            if jobs.len() >= BATCH {
                break;
            }
            tokio::task::yield_now().await;
            while jobs.len() < BATCH {
                match queue.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
        }
        let batch: Vec<Job> = std::mem::take(&mut jobs);
        let invites: Vec<Invite> = batch.iter().map(|j| j.invite.clone()).collect();
        match store.issue_new_invites(&invites).await {
            Ok(issued) => {
                for (job, issued) in batch.into_iter().zip(issued) {
                    let answer = match issued {
                        Some(invite) => Ok(invite),
                        None => store.issue_invite(&job.invite, job.now).await,
                    };
                    job.answer(answer);
                }
            }
            Err(_) => {
                // Each on its own: every request gets its own answer (or precise error).
                for job in batch {
                    let answer = store.issue_invite(&job.invite, job.now).await;
                    job.answer(answer);
                }
            }
        }
    }
}
