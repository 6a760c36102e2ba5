//! The `userjourneys` command line.

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::services::bootstrap;
use crate::startup::Application;

#[derive(Debug, Parser)]
#[command(name = "userjourneys", version, about = "The UserJourneys server")]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
    /// `--public-url` was typed on the command line (not read from `UJ_PUBLIC_URL`): the
    /// demo serves at it then ([`Cli::read`]).
    #[arg(skip)]
    pub public_url_typed: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// The command line as typed, noting where `--public-url` came from: the demo ignores
    /// `UJ_PUBLIC_URL` (the real server's address, whose links it would print and post
    /// cohorts to) but serves at an address typed for it (one listening on every interface,
    /// in a container, needs it).
    pub fn read() -> Self {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Self::command().get_matches();
        let typed = |matches: &clap::ArgMatches| {
            matches.value_source("public_url") == Some(clap::parser::ValueSource::CommandLine)
        };
        let public_url_typed =
            typed(&matches) || matches.subcommand().is_some_and(|(_, sub)| typed(sub));
        let mut cli = Self::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
        cli.public_url_typed = public_url_typed;
        cli
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Try UserJourneys: the server on a temporary database beside a simulated Mixpanel,
    /// with credentials and next steps printed. Leaves the configured database alone: it
    /// ignores `--database-url`, `--secret-key-file` and the `--mixpanel-*` addresses, and
    /// `UJ_PUBLIC_URL` (a `--public-url` typed here is served at: to listen on every
    /// interface, `--bind 0.0.0.0:8080 --public-url http://<host>:8080`).
    Demo,
    /// Administrative tasks for automation.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create the account and project if absent, and print a JSON object with the project id,
    /// its public key and a new secret key. Safe to run again: each run adds a secret key (not
    /// held to the project's cap of 100; revoke the old ones).
    Bootstrap {
        #[arg(long)]
        email: String,
        /// The account's password (only used when the account is created).
        #[arg(long, env = "UJ_BOOTSTRAP_PASSWORD", hide_env_values = true)]
        password: String,
        #[arg(long)]
        project: String,
    },
    /// Copy the SQLite database (consistently, while the server runs) and the application
    /// key file into an empty directory, and print where they went. PostgreSQL: use pg_dump.
    Backup {
        /// The directory to write `userjourneys.db` and `app.key` into.
        #[arg(long)]
        to: std::path::PathBuf,
    },
    /// Make the configured application key this database's own, when the key it belonged to
    /// is lost for good or leaked. What the old key sealed or signed stays unreadable: connect
    /// Mixpanel again; outstanding launch links stop working, and forms open in browsers need
    /// a reload (sessions stay signed in: they do not depend on the key). The server refuses
    /// another key until this is run. The key file must exist (a backup's `app.key`, say)
    /// unless `--new-key` makes one; stop the server first (on SQLite it is refused while
    /// one serves the file).
    AdoptKey {
        /// Make a new key at the key file's path (there must be none there) and adopt it:
        /// the old key is lost for good, or leaked.
        #[arg(long)]
        new_key: bool,
    },
    /// Copy the SQLite database (`DATABASE_URL`) into an empty PostgreSQL database, to serve
    /// it from several processes, and print each table's row count. Stop the server first:
    /// the copy holds the file as its server would. The copy lands whole or not at all; the
    /// SQLite file is only read (once migrated to this release). Serve the PostgreSQL
    /// database with the same key file.
    CopyToPostgres {
        /// The PostgreSQL database to copy into (`postgres://…`; it may carry a password, so
        /// prefer the environment variable), empty or new.
        #[arg(long, env = "UJ_COPY_TO", hide_env_values = true)]
        to: String,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(&cli.config).await?;
            tracing::info!(url = %app.public_url(), "UserJourneys is running; open the dashboard");
            // In one write, its failure ignored: a reader that takes the first line and
            // closes the pipe (a supervisor, a test) must not stop the server.
            let mut said = format!("UserJourneys dashboard: {}/\n", app.public_url());
            // A hint only: the database not answering it is found by the requests.
            if let Some(hint) = app.first_run_hint().await.ok().flatten() {
                said.push_str(&hint);
                said.push('\n');
            }
            let mut stdout = std::io::stdout().lock();
            let _ = std::io::Write::write_all(&mut stdout, said.as_bytes())
                .and_then(|()| std::io::Write::flush(&mut stdout));
            if let Some(port) = app.metrics_port() {
                tracing::info!(port, "metrics are served at /metrics (UJ_METRICS_BIND)");
            }
            app.run_until_stopped().await
        }
        Command::Demo => crate::demo::run(cli.config, cli.public_url_typed).await,
        Command::Admin {
            command:
                AdminCommand::Bootstrap {
                    email,
                    password,
                    project,
                },
        } => {
            let store = crate::startup::open_store(&cli.config).await?;
            let output = bootstrap::run(store.as_ref(), &email, &password, &project).await?;
            print_output(&serde_json::to_string(&output)?).map_err(|error| {
                error.context(
                    "the new secret key is made but was not shown: revoke it (its prefix is \
                     in the dashboard's API keys) and run bootstrap again",
                )
            })
        }
        Command::Admin {
            command: AdminCommand::Backup { to },
        } => {
            let output = crate::backup::run(&cli.config, &to).await?;
            print_output(&serde_json::to_string(&output)?)
        }
        Command::Admin {
            command: AdminCommand::CopyToPostgres { to },
        } => {
            use uj_storage::Backend;
            let from = &cli.config.database_url;
            if Backend::of(from)? != Backend::Sqlite {
                anyhow::bail!("DATABASE_URL names no SQLite file: the copy reads one");
            }
            if Backend::of(&to)? != Backend::Postgres {
                anyhow::bail!("--to (UJ_COPY_TO) must be a postgres:// URL");
            }
            let copied = uj_storage::copy_sqlite_to_postgres(from, &to).await?;
            print_output(&serde_json::json!({ "copied": copied }).to_string())
        }
        Command::Admin {
            command: AdminCommand::AdoptKey { new_key },
        } => {
            // Everything refused before the database is opened (and migrated): a refusal
            // leaves it as the release before can serve it.
            let path = cli.config.secret_key_path();
            crate::startup::check_adoptable(&cli.config)?;
            let loaded = crate::app_key::AppKey::load(&path)?;
            match (&loaded, new_key) {
                (Some(_), false) | (None, true) => {}
                (Some(_), true) => anyhow::bail!(
                    "{} exists: --new-key makes a new key there. Move that file away first, or \
                     leave out --new-key to adopt it",
                    path.display()
                ),
                (None, false) => anyhow::bail!(
                    "there is no key file at {}: to adopt a key you have (a backup's app.key), \
                     point UJ_SECRET_KEY_FILE at it; to make a new one because the database's \
                     is lost for good, run `userjourneys admin adopt-key --new-key`",
                    path.display()
                ),
            }
            let store = crate::startup::open_for_adopting(&cli.config).await?;
            let key = match loaded {
                Some(key) => key,
                // Made once no server holds the file.
                None => crate::app_key::AppKey::create(&path)?,
            };
            store.adopt_key_fingerprint(&key.fingerprint()).await?;
            let unreadable =
                crate::services::mixpanel::mark_unreadable_secrets(store.as_ref(), &key).await?;
            eprintln!(
                "{} is now this database's application key. {unreadable} Mixpanel connection(s) \
                 hold a secret sealed with the old key. Connect Mixpanel again in those projects.",
                cli.config.secret_key_path().display()
            );
            Ok(())
        }
    }
}

/// Prints a command's result: a closed or full stdout is the command's error, not a panic
/// (`println!`'s) after its work is done.
fn print_output(line: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .map_err(|error| anyhow::anyhow!("cannot write the output: {error}"))
}
