//! Configuration from flags or environment variables (SPEC §5.4).

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// The most seconds any duration setting takes (a year): more would overflow the clock's
/// arithmetic (a header deadline of 2^64 s panicked every connection once the server ran).
const MAX_SECS: u64 = 365 * 24 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Settings shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Database: a SQLite file (`sqlite://path` or a plain path) or a `postgres://` URL.
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        default_value = "sqlite://userjourneys.db",
        global = true,
        value_parser = DatabaseUrl
    )]
    pub database_url: String,

    /// Address the HTTP server listens on.
    #[arg(long, env = "UJ_BIND", default_value = "127.0.0.1:8080", global = true)]
    pub bind: String,

    /// The URL users and Mixpanel reach this server at (base of webhook and invite URLs).
    /// Defaults to `http://` + the bind address. With `https://`, cookies are `Secure` and
    /// `__Host-` named, and answers carry HSTS.
    #[arg(long, env = "UJ_PUBLIC_URL", global = true, value_parser = absolute_http_url)]
    pub public_url: Option<String>,

    /// File holding the application key (encrypts stored credentials, signs URLs).
    /// Generated on first run when absent; by default beside the SQLite file.
    #[arg(long, env = "UJ_SECRET_KEY_FILE", global = true)]
    pub secret_key_file: Option<PathBuf>,

    /// Log format on stderr.
    #[arg(
        long,
        env = "UJ_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,

    /// Requests each public SDK key may make per minute (per server process).
    #[arg(
        long,
        env = "UJ_SDK_REQUESTS_PER_MINUTE",
        default_value_t = 1200,
        global = true,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub sdk_requests_per_minute: u32,

    /// REST API requests each project may make per minute (per server process), whichever
    /// of its secret keys it uses.
    #[arg(
        long,
        env = "UJ_API_REQUESTS_PER_MINUTE",
        default_value_t = 6000,
        global = true,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub api_requests_per_minute: u32,

    /// Reverse proxies (load balancers) in front of this server, each appending the
    /// address it was reached from to `X-Forwarded-For`. Sign-in throttling, and the SDK's
    /// count of keys that are no project's, count per client by the address the outermost
    /// one saw. With 0 (the default) it counts by the
    /// connecting address: behind a proxy, every client would share the proxy's.
    #[arg(long, env = "UJ_TRUSTED_PROXIES", default_value_t = 0, global = true)]
    pub trusted_proxies: u8,

    /// Seconds a connection has to send a request's headers, counted from the end of its
    /// previous request on a kept-alive connection; a slower one is closed, so idle or
    /// trickling connections cannot pile up. Keep it above a load balancer's idle timeout
    /// for its connections to this server (75 s is above AWS's default of 60 s).
    #[arg(long, env = "UJ_HEADER_TIMEOUT_SECS", default_value_t = 75, global = true,
          value_parser = clap::value_parser!(u64).range(1..=MAX_SECS))]
    pub header_timeout_secs: u64,

    /// Seconds a request's body may take to arrive once its headers are in, and an answer
    /// may wait for the client to read it; a slower connection is closed, so stalled
    /// uploads or unread answers cannot pile up.
    #[arg(long, env = "UJ_BODY_TIMEOUT_SECS", default_value_t = 30, global = true,
          value_parser = clap::value_parser!(u64).range(1..=MAX_SECS))]
    pub body_timeout_secs: u64,

    /// Seconds a REST API request or a dashboard page may take (sent with a key or a
    /// cookie: from its body's arrival, which `body_timeout_secs` bounds), before it is
    /// answered 503
    /// (`timed_out`): a database or Mixpanel that stops answering holds them this long, not
    /// for the whole outage. A connect asks Mixpanel two to five times in a row (each up to
    /// three tries when it fails); webhook deliveries are not cut (an apply cut short would be retried
    /// from the start).
    #[arg(long, env = "UJ_REQUEST_TIMEOUT_SECS", default_value_t = 60, global = true,
          value_parser = clap::value_parser!(u64).range(1..=MAX_SECS))]
    pub request_timeout_secs: u64,

    /// Seconds an SDK request (and `/readyz`) may take before it is answered 503
    /// `storage_unavailable`: a database that stops answering (frozen, cut off) makes apps
    /// wait this long, not for the whole outage.
    #[arg(long, env = "UJ_SDK_TIMEOUT_SECS", default_value_t = 10, global = true,
          value_parser = clap::value_parser!(u64).range(1..=MAX_SECS))]
    pub sdk_timeout_secs: u64,

    /// Connections served at once; more wait in the listen queue until one closes, so a
    /// flood of connections cannot take the file descriptors the database and Mixpanel
    /// need. By default 10,000, or fewer when the open-files limit (raised to its hard
    /// limit at startup) leaves less than that beside 256 for the server's own files.
    #[arg(long, env = "UJ_MAX_CONNECTIONS", global = true,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: Option<u32>,

    /// Seconds a stop (SIGTERM, SIGINT) waits for requests in flight before closing their
    /// connections.
    #[arg(
        long,
        env = "UJ_SHUTDOWN_GRACE_SECS",
        default_value_t = 30,
        global = true,
        value_parser = clap::value_parser!(u64).range(..=MAX_SECS)
    )]
    pub shutdown_grace_secs: u64,

    /// Address of a second listener serving `GET /metrics` (request counts and latencies
    /// for Prometheus), e.g. `127.0.0.1:9464`; off when unset. It has no authentication:
    /// bind it where only your monitoring reaches.
    #[arg(long, env = "UJ_METRICS_BIND", global = true)]
    pub metrics_bind: Option<String>,

    #[command(flatten)]
    pub mixpanel: MixpanelConfig,
}

/// Where Mixpanel lives (tests and the demo point these at the emulator) and how
/// patiently we talk to it.
#[derive(Debug, Clone, Args)]
pub struct MixpanelConfig {
    #[arg(
        long,
        env = "UJ_MIXPANEL_US_API",
        default_value = "https://mixpanel.com",
        global = true,
        value_parser = mixpanel_url
    )]
    pub mixpanel_us_api: String,
    #[arg(
        long,
        env = "UJ_MIXPANEL_EU_API",
        default_value = "https://eu.mixpanel.com",
        global = true,
        value_parser = mixpanel_url
    )]
    pub mixpanel_eu_api: String,
    #[arg(
        long,
        env = "UJ_MIXPANEL_IN_API",
        default_value = "https://in.mixpanel.com",
        global = true,
        value_parser = mixpanel_url
    )]
    pub mixpanel_in_api: String,
    #[arg(
        long,
        env = "UJ_MIXPANEL_US_DATA",
        default_value = "https://data.mixpanel.com",
        global = true,
        value_parser = mixpanel_url
    )]
    pub mixpanel_us_data: String,
    #[arg(
        long,
        env = "UJ_MIXPANEL_EU_DATA",
        default_value = "https://data-eu.mixpanel.com",
        global = true,
        value_parser = mixpanel_url
    )]
    pub mixpanel_eu_data: String,
    #[arg(
        long,
        env = "UJ_MIXPANEL_IN_DATA",
        default_value = "https://data-in.mixpanel.com",
        global = true,
        value_parser = mixpanel_url
    )]
    pub mixpanel_in_data: String,
    /// Seconds before a Mixpanel request counts as unreachable.
    #[arg(
        long,
        env = "UJ_MIXPANEL_TIMEOUT_SECS",
        default_value_t = 10,
        global = true,
        value_parser = clap::value_parser!(u64).range(..=MAX_SECS)
    )]
    pub mixpanel_timeout_secs: u64,
    /// How often connections are re-verified in the background (seconds; 0 = never).
    #[arg(
        long,
        env = "UJ_MIXPANEL_CHECK_INTERVAL_SECS",
        default_value_t = 3600,
        global = true,
        value_parser = clap::value_parser!(u64).range(..=MAX_SECS)
    )]
    pub mixpanel_check_interval_secs: u64,
}

impl MixpanelConfig {
    pub fn client(&self) -> uj_mixpanel::Client {
        let urls = uj_mixpanel::BaseUrls {
            us_api: self.mixpanel_us_api.clone(),
            eu_api: self.mixpanel_eu_api.clone(),
            in_api: self.mixpanel_in_api.clone(),
            us_data: self.mixpanel_us_data.clone(),
            eu_data: self.mixpanel_eu_data.clone(),
            in_data: self.mixpanel_in_data.clone(),
        };
        let settings = uj_mixpanel::Settings {
            timeout: std::time::Duration::from_secs(self.mixpanel_timeout_secs.max(1)),
            ..uj_mixpanel::Settings::default()
        };
        uj_mixpanel::Client::new(urls, settings)
    }
}

impl Config {
    /// Where the application key lives: `UJ_SECRET_KEY_FILE`, else `userjourneys.key` in the
    /// directory of the SQLite file (or the working directory for PostgreSQL).
    pub fn secret_key_path(&self) -> PathBuf {
        if let Some(path) = &self.secret_key_file {
            return path.clone();
        }
        let dir = match uj_storage::Backend::of(&self.database_url) {
            // Beside the file as SQLite opens it (percent-decoded: `my%20dir` made a
            // directory of that name for the key).
            Ok(uj_storage::Backend::Sqlite) => uj_storage::SqliteStore::file_of(&self.database_url)
                .ok()
                .and_then(|file| file.parent().map(PathBuf::from))
                .unwrap_or_default(),
            // No database opens for an unsupported URL: the key is never used.
            Ok(uj_storage::Backend::Postgres) | Err(_) => PathBuf::new(),
        };
        dir.join("userjourneys.key")
    }

    /// The public base URL without a trailing slash.
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.bind),
        }
    }

    /// Whether browsers reach us over HTTPS: cookies are then `Secure` and `__Host-` named,
    /// and answers carry HSTS.
    pub fn https(&self) -> bool {
        // URL schemes are case-insensitive (RFC 3986).
        self.public_url()
            .get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
    }
}

/// `DATABASE_URL` naming a database we serve ([`uj_storage::Backend::of`]), refused at
/// startup otherwise. Not a plain function: clap's error for one repeats the value, and a
/// PostgreSQL URL may carry a password.
#[derive(Clone)]
struct DatabaseUrl;

impl clap::builder::TypedValueParser for DatabaseUrl {
    type Value = String;

    fn parse_ref(
        &self,
        command: &clap::Command,
        _: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        let refuse = |message: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("DATABASE_URL {message}\n"),
            )
            .with_cmd(command)
        };
        let url = value
            .to_str()
            .ok_or_else(|| refuse("is not UTF-8".into()))?;
        uj_storage::Backend::of(url).map_err(|error| refuse(error.to_string()))?;
        Ok(url.to_owned())
    }
}

/// `UJ_PUBLIC_URL` as links need it: `http://` or `https://` and a host (without a scheme
/// every invite, launch and webhook URL handed out would be unusable), and nothing after
/// them: links are this base and a path, so a query, fragment or credentials would break
/// each one, and the dashboard's own links and redirects are absolute paths, so a path
/// prefix (a proxy serving the server under `/uj`) would send browsers out of it.
fn absolute_http_url(raw: &str) -> Result<String, String> {
    let url = raw.trim();
    let example = "give the address users and Mixpanel reach, e.g. https://uj.example.com";
    let parsed = url::Url::parse(url)
        .ok()
        .filter(|u| {
            matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
        })
        .ok_or_else(|| format!("{raw:?} is not an absolute http(s) URL; {example}"))?;
    let extra = if !parsed.username().is_empty() || parsed.password().is_some() {
        Some("credentials")
    } else if parsed.query().is_some() {
        Some("a query")
    } else if parsed.fragment().is_some() {
        Some("a fragment")
    } else if parsed.path() != "/" {
        Some("a path (the server is served at the root of its host, not under a prefix)")
    } else {
        None
    };
    // As parsed, not as typed: the parser reads some text leniently (`https:host`, a tab
    // inside, `/.`), and every link is this base.
    let lenient = url.chars().any(|c| c.is_whitespace() || c.is_control())
        || !url
            .to_ascii_lowercase()
            .starts_with(&format!("{}://", parsed.scheme()));
    match (extra, lenient) {
        (Some(extra), _) => Err(format!(
            "{raw:?} has {extra}; give only the scheme, host and port, e.g. https://uj.example.com"
        )),
        (None, true) => Err(format!("{raw:?} is not an absolute http(s) URL; {example}")),
        (None, false) => Ok(parsed.as_str().trim_end_matches('/').to_owned()),
    }
}

/// A Mixpanel address (`UJ_MIXPANEL_*`): one that is no URL was taken, and each request to
/// it answered as Mixpanel being unreachable ("try again in a few minutes").
fn mixpanel_url(raw: &str) -> Result<String, String> {
    url::Url::parse(raw)
        .ok()
        .filter(|u| {
            matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
        })
        .map(|_| raw.to_owned())
        .ok_or_else(|| {
            format!("{raw:?} is not an absolute http(s) URL; give Mixpanel's address, e.g. https://eu.mixpanel.com")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Probe {
        #[command(flatten)]
        config: Config,
    }

    fn parse(args: &[&str]) -> Config {
        Probe::parse_from(std::iter::once("userjourneys").chain(args.iter().copied())).config
    }

    #[test]
    fn a_mixpanel_address_must_be_an_http_url() {
        let config = parse(&["--mixpanel-eu-api", "http://127.0.0.1:9000"]);
        assert_eq!(config.mixpanel.mixpanel_eu_api, "http://127.0.0.1:9000");
        for wrong in [
            "notaurl",
            "eu.mixpanel.com",
            "ftp://eu.mixpanel.com",
            "https://",
        ] {
            let refused = Probe::try_parse_from(["userjourneys", "--mixpanel-us-data", wrong]);
            let said = refused.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(
                said.contains("not an absolute http(s) URL"),
                "{wrong}: {said}"
            );
        }
    }

    #[test]
    fn the_key_file_sits_beside_the_sqlite_file() {
        let config = parse(&["--database-url", "sqlite://data/uj.db"]);
        assert_eq!(
            config.secret_key_path(),
            PathBuf::from("data/userjourneys.key")
        );
        let config = parse(&["--database-url", "sqlite:///srv/my%20dir/uj.db"]);
        assert_eq!(
            config.secret_key_path(),
            PathBuf::from("/srv/my dir/userjourneys.key")
        );
        let config = parse(&["--database-url", "SQLITE://data/uj.db?mode=rwc"]);
        assert_eq!(
            config.secret_key_path(),
            PathBuf::from("data/userjourneys.key")
        );
        let config = parse(&["--database-url", "uj.db"]);
        assert_eq!(config.secret_key_path(), PathBuf::from("userjourneys.key"));
        let config = parse(&[
            "--database-url",
            "postgres://db/uj",
            "--secret-key-file",
            "/etc/uj.key",
        ]);
        assert_eq!(config.secret_key_path(), PathBuf::from("/etc/uj.key"));
    }

    #[test]
    fn https_is_read_from_the_public_url() {
        assert!(!parse(&[]).https());
        assert_eq!(parse(&[]).public_url(), "http://127.0.0.1:8080");
        let config = parse(&["--public-url", "https://uj.example.com/"]);
        assert!(config.https());
        assert_eq!(config.public_url(), "https://uj.example.com");
        assert!(parse(&["--public-url", "HTTPS://uj.example.com"]).https());
        assert!(!parse(&["--public-url", "http://uj.example.com"]).https());
    }

    #[test]
    fn settings_that_would_break_links_or_the_sdk_are_refused() {
        let refused = |args: &[&str]| {
            Probe::try_parse_from(std::iter::once("userjourneys").chain(args.iter().copied()))
                .is_err()
        };
        for url in [
            "uj.example.com",
            "https://",
            "ftp://uj.example.com",
            "https:// x",
            // Links are the base and a path: each of these broke every one.
            "https://uj.example.com/base",
            "https://uj.example.com?x=1",
            "https://uj.example.com#top",
            "https://user:pw@uj.example.com",
            "https://uj.example.com:port",
            "http://[::1",
            // Read leniently by the URL parser, and broken as typed.
            "https:uj.example.com",
            "https:\\\\uj.example.com",
            "https://uj.exa\tmple.com",
        ] {
            assert!(refused(&["--public-url", url]), "{url}");
        }
        for url in [
            "HTTPS://uj.example.com",
            "https://uj.example.com/",
            "http://127.0.0.1:8080",
            "http://[::1]:8080",
        ] {
            assert!(!refused(&["--public-url", url]), "{url}");
        }
        // Kept as parsed: the scheme in lower case, the default port left out, a host of
        // another script in the form DNS (and Mixpanel) takes.
        assert_eq!(
            parse(&["--public-url", "HTTPS://UJ.Example.com:443/"]).public_url(),
            "https://uj.example.com"
        );
        assert_eq!(
            parse(&["--public-url", "https://müller.example"]).public_url(),
            "https://xn--mller-kva.example"
        );
        // 0 would mean one request a minute for the whole app, not "no limit".
        assert!(refused(&["--sdk-requests-per-minute", "0"]));
        assert!(!refused(&["--sdk-requests-per-minute", "1"]));
    }
}
