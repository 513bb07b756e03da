//! Logging set-up: `RUST_LOG`-style filtering (env `DIRSYNC_LOG`, default
//! `info`), text or JSON lines on standard error; and metrics.

pub mod metrics;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. CLI commands log warnings only, unless
/// `DIRSYNC_LOG` says otherwise.
pub fn init(format: &str, service: bool) {
    let default = if service { "info" } else { "warn" };
    let filter = EnvFilter::try_from_env("DIRSYNC_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let result = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    if let Err(e) = result {
        eprintln!("logging already initialised: {e}");
    }
}
