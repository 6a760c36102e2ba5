//! Building and running the application: `Application::build` binds the listener, opens
//! and migrates the database and loads the key; `run_until_stopped` serves until SIGINT or
//! SIGTERM and runs background jobs beside it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use uj_storage::Store;

use crate::app_key::AppKey;
use crate::config::Config;
use crate::services::login_throttle::LoginThrottle;
use crate::state::AppState;

pub struct Application {
    listener: TcpListener,
    state: AppState,
    /// `GET /metrics`, when `UJ_METRICS_BIND` asks for it.
    metrics_listener: Option<TcpListener>,
    check_interval: Duration,
    header_timeout: Duration,
    body_timeout: Duration,
    shutdown_grace: Duration,
    max_connections: usize,
}

impl Application {
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        // Settings first: a refusal leaves no database or key behind. Addresses that name
        // nothing are refused before a database or key is made; a port in use is found only
        // by binding, after the database's lock (a server restarting on the same port and
        // file waits for the old one to stop, which frees both).
        for (bind, setting) in std::iter::once((&config.bind, "UJ_BIND"))
            .chain(config.metrics_bind.iter().map(|b| (b, "UJ_METRICS_BIND")))
        {
            let mut addresses = tokio::net::lookup_host(bind.as_str())
                .await
                .with_context(|| format!("{setting}={bind:?} is not an address to listen on (host:port, e.g. 127.0.0.1:8080)"))?;
            // As resolved: `0:8080` is everywhere too.
            let everywhere = addresses.any(|address| address.ip().is_unspecified());
            if setting == "UJ_BIND" && everywhere && config.public_url.is_none() {
                return Err(listening_everywhere(&config.bind));
            }
        }
        let key_path = config.secret_key_path();
        // A key that is not the database's is refused before the database is opened for
        // serving, which migrates it: refused, it stays as the release before can serve it.
        if let Some(recorded) = uj_storage::recorded_key_fingerprint(&config.database_url).await {
            match AppKey::load(&key_path)? {
                Some(key) if key.fingerprint() != recorded => return Err(not_its_key(&key_path)),
                None => return Err(no_key_file(config, &key_path)),
                Some(_) => {}
            }
        }
        let store = uj_storage::connect_as_server(&config.database_url)
            .await
            .context("cannot open the database (DATABASE_URL)")?;
        let recorded = store.key_fingerprint().await?;
        // A database from before its key was recorded (migration 0015) may hold Mixpanel
        // secrets sealed with one: it belongs to the key that opens them.
        let sealed = match recorded {
            Some(_) => Vec::new(),
            None => store.mixpanel_connections().await?,
        };
        let key = match AppKey::load(&key_path)? {
            Some(key) => key,
            // A new key only for a database no key has sealed anything in yet: a lost key
            // file replaced by a new one would leave every stored secret unreadable.
            None if recorded.is_some() || !sealed.is_empty() => {
                return Err(no_key_file(config, &key_path))
            }
            None => AppKey::create(&key_path)?,
        };
        let sealed = sealed.iter().map(|s| {
            (
                s.connection.project_id.as_str(),
                s.secret_ciphertext.as_str(),
            )
        });
        if recorded.is_none() && !crate::services::mixpanel::sealed_with(&key, sealed) {
            return Err(not_its_key(&key_path));
        }
        // A database belongs to one key: with another, every stored secret is unreadable.
        if store.claim_key_fingerprint(&key.fingerprint()).await? != key.fingerprint() {
            return Err(not_its_key(&key_path));
        }
        let listener = TcpListener::bind(&config.bind)
            .await
            .with_context(|| format!("cannot listen on {} (UJ_BIND)", config.bind))?;
        let public_url = match &config.public_url {
            Some(_) => config.public_url(),
            // Port 0 in tests: report the port actually bound.
            None => {
                let bound = listener.local_addr()?;
                if bound.ip().is_unspecified() {
                    return Err(listening_everywhere(&bound.to_string()));
                }
                format!("http://{bound}")
            }
        };
        let state = AppState::new(crate::state::Shared {
            invite_writer: Arc::new(crate::services::invite_writer::InviteWriter::start(
                store.clone(),
            )),
            store,
            key,
            public_url,
            https: config.https(),
            trusted_proxies: config.trusted_proxies,
            login_throttle: Arc::new(LoginThrottle::default()),
            unknown_keys: Arc::new(LoginThrottle::for_public_keys()),
            mixpanel: config.mixpanel.client(),
            sdk_timeout: Duration::from_secs(config.sdk_timeout_secs),
            request_timeout: Duration::from_secs(config.request_timeout_secs),
            sdk_limiter: Arc::new(crate::http::RateLimiter::new(
                config.sdk_requests_per_minute,
            )),
            api_limiter: Arc::new(crate::http::RateLimiter::new(
                config.api_requests_per_minute,
            )),
            counters: Arc::default(),
            snapshots: Arc::default(),
            user_turns: Default::default(),
            trait_erasures: Arc::default(),
            metrics: crate::http::metrics::Metrics::default(),
            refusal_notes: governor::DefaultKeyedRateLimiter::keyed(governor::Quota::per_minute(
                std::num::NonZeroU32::MIN,
            )),
            deliveries_in_flight: Arc::default(),
            database_lost: std::sync::OnceLock::new(),
            background: Default::default(),
            demo: None,
        });
        let metrics_listener = match &config.metrics_bind {
            Some(bind) => Some(TcpListener::bind(bind).await.with_context(|| {
                format!("cannot listen on {bind} for metrics (UJ_METRICS_BIND)")
            })?),
            None => None,
        };
        let check_interval = Duration::from_secs(config.mixpanel.mixpanel_check_interval_secs);
        Ok(Self {
            listener,
            metrics_listener,
            state,
            check_interval,
            header_timeout: Duration::from_secs(config.header_timeout_secs),
            body_timeout: Duration::from_secs(config.body_timeout_secs),
            shutdown_grace: Duration::from_secs(config.shutdown_grace_secs),
            max_connections: connection_limit(config.max_connections),
        })
    }

    /// Serves the demo panel for this simulated Mixpanel (`userjourneys demo`).
    pub fn with_demo(mut self, emulator: Arc<mixpanel_emulator::Emulator>) -> Self {
        self.state.before_serving().demo = Some(emulator);
        self
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The port `GET /metrics` is served on, if it is.
    pub fn metrics_port(&self) -> Option<u16> {
        let listener = self.metrics_listener.as_ref()?;
        listener.local_addr().ok().map(|a| a.port())
    }

    pub fn public_url(&self) -> &str {
        &self.state.public_url
    }

    /// What to do next on a server no one has set up yet, if that is this one.
    pub async fn first_run_hint(&self) -> anyhow::Result<Option<String>> {
        if self.state.store.is_set_up().await? {
            return Ok(None);
        }
        // Local only when both the socket and the address people are given are (a proxy
        // in front of a loopback socket makes it reachable).
        let public = self.state.public_url.as_str();
        let local = self.listener.local_addr()?.ip().is_loopback()
            && [
                "http://127.",
                "http://localhost",
                "http://[::1]",
                "https://127.",
                "https://localhost",
                "https://[::1]",
            ]
            .iter()
            .any(|local| public.starts_with(local));
        Ok(Some(match local {
            true => "Not set up yet: the first visit creates the owner account and the first project.".into(),
            false => "Not set up yet, and reachable from other machines: the first visitor becomes the owner. Set it up now, or run `userjourneys admin bootstrap` first.".into(),
        }))
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let jobs = tokio::spawn(background_jobs(self.state.store.clone()));
        let checks = (!self.check_interval.is_zero()).then(|| {
            tokio::spawn(crate::services::mixpanel::check_connections_every(
                self.state.clone(),
                self.check_interval,
            ))
        });
        let counters = tokio::spawn(crate::services::counters::flush_every(self.state.clone()));
        let watch = tokio::spawn(watch_database_file(self.state.clone()));
        let erasures = self.state.clone();
        tokio::spawn(async move {
            if let Err(error) = crate::services::settings::resume_trait_erasures(&erasures).await {
                tracing::warn!(error = %error, "could not read which trait erases are due; the next save of an allowlist or start resumes them");
            }
        });
        let metrics = self.metrics_listener.map(|listener| {
            let router = crate::http::metrics::router(self.state.clone());
            // As the public listener's deadlines, and a few connections: a scraper needs one
            // (it had no cap and no deadline, so idle connections took descriptors the
            // database needs; found by the observability probe). Stopped with the server.
            let limits = Limits {
                header: self.header_timeout,
                body: self.body_timeout,
                connections: METRICS_CONNECTIONS,
                setting: "the metrics listener's",
                counted: false,
            };
            tokio::spawn(serve(
                listener,
                router,
                limits,
                self.state.clone(),
                Duration::ZERO,
                std::future::pending(),
            ))
        });
        let state = self.state.clone();
        let router = crate::http::router(self.state.clone());
        let limits = Limits {
            header: self.header_timeout,
            body: self.body_timeout,
            connections: self.max_connections,
            setting: "UJ_MAX_CONNECTIONS",
            counted: true,
        };
        let mut cut_short = serve(
            self.listener,
            router,
            limits,
            self.state,
            self.shutdown_grace,
            shutdown_signal(),
        )
        .await;
        jobs.abort();
        counters.abort();
        watch.abort();
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        // The last counted decisions, so a restart loses none: for a few seconds at most,
        // and not past another stop signal (a database that does not answer is often why
        // the stop was repeated).
        tokio::select! {
            saved = tokio::time::timeout(FLUSH_AT_STOP, state.counters.flush(&state.store)) => {
                match saved {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => tracing::warn!(error = %error, "could not save counts at shutdown"),
                    Err(_) => tracing::warn!("the counts were not saved in time at shutdown"),
                }
            }
            () = stop_signal() => {
                tracing::warn!("stopped again: the counts were not saved");
                cut_short = true;
            }
        }
        // Then work started behind an answer, for a few seconds at most (a connect's first
        // reads of cohorts and event names were lost to a stop right after its answer);
        // not when the stop was cut short (a second signal, while serving or saving the
        // counts, or the grace over).
        state.background.close();
        if !cut_short {
            tokio::select! {
                done = tokio::time::timeout(FLUSH_AT_STOP, state.background.wait()) => {
                    if done.is_err() {
                        tracing::warn!("work started behind an answer did not end in time at shutdown");
                    }
                }
                () = stop_signal() => tracing::warn!("stopped again: not waiting for work started behind an answer"),
            }
        }
        if let Some(checks) = checks {
            checks.abort();
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// How long a stop waits to save the counted decisions.
const FLUSH_AT_STOP: Duration = Duration::from_secs(5);

/// How often the SQLite file's path is checked against the file the server opened.
const FILE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// A SQLite file deleted or replaced while the server runs: its open files keep the old one,
/// so it would go on answering (and acknowledging writes) from a file no later start finds.
/// Once that is seen, every request but `/healthz` is refused (`http::outermost`), and the
/// database as the server has it is copied beside its path for the operator to put back.
async fn watch_database_file(state: AppState) {
    let mut every = tokio::time::interval(FILE_CHECK_INTERVAL);
    let what = loop {
        every.tick().await;
        if let Some(what) = state.store.file_lost() {
            break what;
        }
    };
    let _ = state.database_lost.set(what);
    tracing::error!(
        "the database file was {what} while the server ran: it stops serving (every request \
         but /healthz answers 503) so that nothing more is written where no later start would find it"
    );
    match state.store.rescue().await {
        Ok(copy) => tracing::error!(
            copy = %copy.display(),
            "the database as this server had it is saved: stop the server, delete the -wal and \
             -shm files beside the database's path (they are the lost file's), move the copy to \
             that path (the key file stays as it is) and start it again"
        ),
        Err(error) => tracing::error!(
            error = %error,
            "could not save the database as this server had it; while the server runs, its open \
             files are under /proc/{}/fd",
            std::process::id()
        ),
    }
}

/// Refusing to guess the public address of a server listening on every interface.
fn listening_everywhere(bind: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "UJ_BIND listens on every interface ({bind}): set UJ_PUBLIC_URL to the address users \
         and Mixpanel reach; it is the base of every invite, launch and webhook link (the \
         demo ignores UJ_PUBLIC_URL: type --public-url on its command line)"
    )
}

/// Refusing to start without the key file of a database that belongs to a key.
fn no_key_file(config: &Config, key_path: &std::path::Path) -> anyhow::Error {
    anyhow::anyhow!(
        "there is no application key file at {}, and this database belongs to the key it \
         was first started with (stored Mixpanel credentials are sealed with it, launch \
         links signed). Put back the key file kept with this database (admin backup writes \
         one beside each copy){} or point UJ_SECRET_KEY_FILE at it; if it is lost for \
         good, `userjourneys admin adopt-key --new-key` makes a new one the database's \
         (then connect Mixpanel again). See docs/backup.md",
        key_path.display(),
        match backup_key_beside(&config.database_url) {
            Some(key) => format!(": {} is beside the database", key.display()),
            None => String::new(),
        }
    )
}

/// Refusing a key that is not the database's (found by its recorded fingerprint, or by the
/// stored secrets it cannot open).
fn not_its_key(key_path: &std::path::Path) -> anyhow::Error {
    anyhow::anyhow!(
        "the application key in {} is not the key this database belongs to (the one it was \
         first served with: it seals the stored Mixpanel credentials and signs launch links). \
         Every process serving the database runs with that key: point UJ_SECRET_KEY_FILE at \
         the file the others use, or put back the key kept with this database (admin backup \
         writes one beside each copy); if it is lost for good, `userjourneys admin adopt-key` \
         makes this one the database's (then connect Mixpanel again). See docs/backup.md",
        key_path.display()
    )
}

/// How long a connection may keep the server waiting at each stage of a request, and how
/// many connections it serves at once.
struct Limits {
    /// For a request's headers.
    header: Duration,
    /// For its body once the headers are in, and for each write of the answer.
    body: Duration,
    /// Connections open at once; the next is accepted when one closes.
    connections: usize,
    /// What sets `connections`, for the warning when they are all open.
    setting: &'static str,
    /// Requests refused unread count in `uj_http_unreadable_requests_total`: the public
    /// listener's; the metrics listener's are the monitoring's own.
    counted: bool,
}

/// Connections the metrics listener serves at once.
const METRICS_CONNECTIONS: usize = 16;

/// Serves `router` on HTTP/1 until `stop` (the public listener: SIGINT or SIGTERM), as
/// `axum::serve` would, with limits it does not set: a connection has `limits.header` to send
/// a request's headers (else it is closed; hyper counts an idle kept-alive connection's wait
/// for its next request too), at most `limits.connections` are open at once, and a stop waits
/// `grace` at most for the requests in flight. A request hyper refuses before the router
/// sees it (400, 431) is counted in `state`'s metrics. Whether the stop was cut short (the
/// grace over, or a second signal).
async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: Limits,
    state: AppState,
    grace: Duration,
    stop: impl std::future::Future<Output = ()>,
) -> bool {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::Layer;
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header);
    let router = crate::http::with_body_deadline(router, limits.body);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.connections));
    let mut full_since_warned: Option<std::time::Instant> = None;
    let mut stop = std::pin::pin!(stop);
    // Held to end them when the stop stops waiting: left running, they went on answering
    // after the counts were flushed, and what they counted was lost.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        // A connection past the limit waits in the listen queue (and its client with it)
        // until one closes: accepting it would take a file descriptor the database may need.
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if full_since_warned.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                    tracing::warn!(
                        max_connections = limits.connections,
                        setting = limits.setting,
                        "connection limit reached: new connections wait until one closes"
                    );
                    full_since_warned = Some(std::time::Instant::now());
                }
                tokio::select! {
                    slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
                    () = &mut stop => break,
                }
            }
        };
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        // The client's address for the handlers that read it (sign-in throttling).
        let service = axum::Extension(axum::extract::ConnectInfo(client)).layer(router.clone());
        // An answer the client does not read (its window closed) fails the connection
        // after the deadline instead of holding it.
        let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
        stream.set_write_timeout(Some(limits.body));
        let connection = http.serve_connection(
            TokioIo::new(Box::pin(stream)),
            hyper_util::service::TowerToHyperService::new(service),
        );
        let connection = graceful.watch(connection);
        let (state, counted) = (state.clone(), limits.counted);
        connections.spawn(async move {
            if let Err(error) = connection.await {
                match unreadable(&error) {
                    Some(reason) => {
                        if counted {
                            state.metrics.unreadable(reason);
                        }
                        tracing::debug!(%client, reason, error = %error, "a request could not be read");
                    }
                    None => tracing::trace!(error = %error, "connection ended with an error"),
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        // Requests all answered count as a stop not cut short, even with no grace at all.
        biased;
        () = graceful.shutdown() => return false,
        () = tokio::time::sleep(grace) => {
            tracing::warn!(grace_secs = grace.as_secs(), "requests still in flight after the grace period: stopping without them");
        }
        // A second Ctrl-C or SIGTERM: whoever sent it means now.
        () = stop_signal() => {
            tracing::warn!("stopped again: stopping now, without the requests in flight");
        }
    }
    // Their clients get no answer (as the warning says), and nothing answered goes uncounted.
    connections.shutdown().await;
    true
}

/// Why hyper refused a request before the router saw it, when it did: `malformed` (it
/// answered 400) or `too_large` (431 for its headers, 414 for its address). Other errors end a connection without a
/// request refused (a client gone, an idle connection's deadline).
fn unreadable(error: &hyper::Error) -> Option<&'static str> {
    if error.is_parse_too_large() {
        Some("too_large")
    } else if error.is_parse() {
        Some("malformed")
    } else {
        None
    }
}

/// Connections the server serves at once: `configured`, or 10,000 by default, less where
/// the open-files limit leaves fewer beside the descriptors kept for the server's own files
/// (the database, Mixpanel, logs: 256, or a quarter of a smaller limit). The soft limit is
/// raised first (to the hard limit, or to 65,536 when that is unlimited), as Go's runtime
/// does: Debian's default of 1024 would cap a server far below what it can serve.
fn connection_limit(configured: Option<u32>) -> usize {
    let open_files = raise_open_files_limit();
    let limit = match configured {
        Some(configured) => {
            let configured = configured as usize;
            if open_files.is_some_and(|files| configured as u64 > files - reserved_files(files)) {
                tracing::warn!(
                    max_connections = configured,
                    open_files,
                    "UJ_MAX_CONNECTIONS leaves too few of the open-files limit for the database \
                     and Mixpanel: a flood of connections can make them fail"
                );
            }
            configured
        }
        None => default_connection_limit(open_files),
    };
    tracing::info!(
        max_connections = limit,
        open_files,
        "connections served at once"
    );
    limit
}

/// File descriptors kept for what the server opens itself, of an open-files limit of `files`.
fn reserved_files(files: u64) -> u64 {
    (files / 4).min(256)
}

fn default_connection_limit(open_files: Option<u64>) -> usize {
    const DEFAULT: u64 = 10_000;
    open_files.map_or(DEFAULT, |files| {
        (files - reserved_files(files)).clamp(1, DEFAULT)
    }) as usize
}

/// The process's open-files limit after raising its soft limit (`None`: unlimited, or not a
/// Unix).
#[cfg(unix)]
fn raise_open_files_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    /// Where an unlimited hard limit is raised to.
    const UNLIMITED_TO: u64 = 65_536;
    let limit = getrlimit(Resource::Nofile);
    let current = limit.current?;
    let target = limit.maximum.unwrap_or(UNLIMITED_TO.max(current));
    if current < target {
        let raised = Rlimit {
            current: Some(target),
            maximum: limit.maximum,
        };
        if let Err(error) = setrlimit(Resource::Nofile, raised) {
            tracing::debug!(error = %error, "could not raise the open-files limit");
        }
    }
    getrlimit(Resource::Nofile).current
}

#[cfg(not(unix))]
fn raise_open_files_limit() -> Option<u64> {
    None
}

/// A failed accept: one connection's trouble is skipped; anything else (too many open
/// files, say) pauses accepting for a moment instead of spinning.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %error, "cannot accept connections; retrying in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// The key file `admin backup` writes beside its copy (`app.key`), when one is beside the
/// SQLite file: a backup directory used in place.
fn backup_key_beside(url: &str) -> Option<std::path::PathBuf> {
    let file = uj_storage::SqliteStore::file_of(url).ok()?;
    let key = file.parent()?.join("app.key");
    key.exists().then_some(key)
}

/// Opens the configured database for `admin adopt-key` ([`check_adoptable`] first), which
/// runs with no server on it: on SQLite it takes the file as its server would (refused while one
/// serves it, which would carry on with the old key).
pub async fn open_for_adopting(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    uj_storage::connect_as_server(&config.database_url)
        .await
        .context("cannot open the database (DATABASE_URL)")
}

/// Refuses `admin adopt-key` on a SQLite file that is not there: it creates nothing.
pub fn check_adoptable(config: &Config) -> anyhow::Result<()> {
    let url = &config.database_url;
    if uj_storage::Backend::of(url)? == uj_storage::Backend::Sqlite {
        let file = uj_storage::SqliteStore::file_of(url)?;
        if !file.exists() {
            anyhow::bail!(
                "no database at {}: check DATABASE_URL (adopt-key creates nothing)",
                file.display()
            );
        }
    }
    Ok(())
}

/// Opens the configured database and migrates it, for an admin command (beside the server
/// that may be serving it).
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    uj_storage::connect(&config.database_url)
        .await
        .context("cannot open the database (DATABASE_URL)")
}

/// Housekeeping that runs beside the server.
async fn background_jobs(store: Arc<dyn Store>) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let now = chrono::Utc::now();
        match store.delete_expired_sessions(now).await {
            Ok(removed) => tracing::debug!(removed, "expired sessions removed"),
            Err(error) => tracing::warn!(error = %error, "could not remove expired sessions"),
        }
        // Deletions of audiences a stopped process left part-way (their rules refused).
        match store.finish_audience_deletions().await {
            Ok(0) => {}
            Ok(finished) => tracing::info!(finished, "audience deletions left part-way finished"),
            Err(error) => tracing::warn!(error = %error, "could not finish audience deletions"),
        }
        // A full sync unfinished for a day will not be finished: Mixpanel starts a new one.
        match store
            .delete_stale_staging(now - uj_domain::cohort_sync::STAGING_KEPT_FOR)
            .await
        {
            Ok(removed) => tracing::debug!(removed, "stale cohort-sync staging removed"),
            Err(error) => tracing::warn!(error = %error, "could not remove stale staging"),
        }
        match store
            .delete_old_ledger_entries(now - uj_domain::audiences::LEDGER_KEPT_FOR)
            .await
        {
            // Said when it did something: the operator sees the history's retention at work.
            Ok(0) => {}
            Ok(removed) => {
                tracing::info!(removed, "sync ledger entries older than 90 days removed")
            }
            Err(error) => tracing::warn!(error = %error, "could not remove old ledger entries"),
        }
        match store
            .forget_old_app_events(now - uj_domain::mixpanel::APP_EVENT_NAMES_KEPT_FOR)
            .await
        {
            Ok(0) => {}
            Ok(forgotten) => tracing::info!(
                forgotten,
                "event names the app has not sent for 90 days removed from the catalog"
            ),
            Err(error) => tracing::warn!(error = %error, "could not forget old app event names"),
        }
        // Past their lifetime they answer nothing (a create with the key replaces its own).
        match store
            .delete_stale_idempotency_records(now - uj_domain::idempotency::KEY_LIFETIME)
            .await
        {
            Ok(removed) => tracing::debug!(removed, "stale idempotency records removed"),
            Err(error) => {
                tracing::warn!(error = %error, "could not remove stale idempotency records")
            }
        }
    }
}

async fn shutdown_signal() {
    stop_signal().await;
    tracing::info!("shutting down: finishing requests in flight (stop again to stop now)");
}

/// Ctrl-C (SIGINT) or SIGTERM.
async fn stop_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    use super::default_connection_limit;

    #[test]
    fn the_default_connection_limit_leaves_the_reserve_and_stays_bounded() {
        assert_eq!(default_connection_limit(None), 10_000);
        assert_eq!(default_connection_limit(Some(1024)), 768);
        assert_eq!(default_connection_limit(Some(1_048_576)), 10_000);
        // A small limit (macOS's 256) keeps a quarter for the server's own files.
        assert_eq!(default_connection_limit(Some(256)), 192);
        assert_eq!(default_connection_limit(Some(1)), 1);
    }
}
