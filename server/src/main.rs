//! The `grouplab` binary: parse the configuration, then run the server until Ctrl-C or SIGTERM.

use clap::Parser;
use grouplab_server::config::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "grouplab_server=info,warn".into()),
        )
        .init();
    let config = Config::parse();
    let shutdown = grouplab_server::shutdown_signal();
    grouplab_server::run(config, shutdown).await
}
