//! The `grouplab` binary: parse the configuration, then run the server until Ctrl-C or SIGTERM.

use clap::Parser;
use grouplab_server::config::Config;

/// A refusal to start (a port in use, a bad flag) is one clear message and exit code 1, with no
/// backtrace even under `RUST_BACKTRACE=1`: it is for a learner, not for a debugger.
fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("grouplab could not start: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // `grouplab export …`: a class's results from a data folder, the server running or not.
    if std::env::args().nth(1).as_deref() == Some("export") {
        let args = grouplab_server::lab::export::ExportArgs::parse_from(std::env::args().skip(1));
        return match runtime.block_on(grouplab_server::lab::export::export(&args)) {
            Ok(text) => {
                print!("{text}");
                std::process::ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("grouplab could not export: {err:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    match runtime.block_on(serve()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("grouplab could not start: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    // The log goes to stderr, as logs do; stdout is left for what grouplab prints to be read
    // (its links).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "grouplab_server=info,warn".into()),
        )
        .init();
    let config = Config::parse();
    let shutdown = grouplab_server::shutdown_signal();
    grouplab_server::run(config, shutdown).await
}
