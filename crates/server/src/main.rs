#![forbid(unsafe_code)]

use userjourneys::cli::{self, Cli};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::read();
    userjourneys::telemetry::init(cli.config.log_format);
    match cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", userjourneys::telemetry::causes(&error));
            std::process::ExitCode::FAILURE
        }
    }
}
