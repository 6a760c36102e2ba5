//! `mixpanel-emulator --scenario FILE --bind ADDR`: the emulator as a standalone server.

#![forbid(unsafe_code)]

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use mixpanel_emulator::{Emulator, Region, Scenario};

#[derive(Parser)]
#[command(
    name = "mixpanel-emulator",
    version,
    about = "A local Mixpanel for tests and demos"
)]
struct Args {
    /// Scenario file (`.toml` or JSON).
    #[arg(long, env = "MIXPANEL_EMULATOR_SCENARIO")]
    scenario: std::path::PathBuf,
    #[arg(long, env = "MIXPANEL_EMULATOR_BIND", default_value = "127.0.0.1:7070")]
    bind: String,
    /// Run every destination's cohort sync this often (seconds; Mixpanel: 1800). Off when 0.
    #[arg(long, default_value_t = 0)]
    sync_interval_secs: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let scenario = Scenario::load(&args.scenario)?;
    let emulator = Emulator::start_on(scenario, &args.bind)
        .await
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    println!("Mixpanel emulator on {}", emulator.base_url());
    for region in Region::ALL {
        let name = region.as_str().to_uppercase();
        println!("  UJ_MIXPANEL_{name}_API={}", emulator.api_url(region));
        println!("  UJ_MIXPANEL_{name}_DATA={}", emulator.data_url(region));
    }
    println!("  controls: {}/_emulator", emulator.base_url());
    let _schedule = (args.sync_interval_secs > 0)
        .then(|| emulator.schedule_syncs(Duration::from_secs(args.sync_interval_secs)));
    tokio::signal::ctrl_c().await?;
    Ok(())
}
