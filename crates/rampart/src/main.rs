//! `rampart`: the command line. It parses arguments and wires the library crates together;
//! the logic lives in `rampart-gateway` and `rampart-policy`.

#![forbid(unsafe_code)]

mod admin_client;
mod audit_cmd;
mod cli;
mod detect;
mod model_cmd;
mod semantic_cmd;
mod serve;
mod table;
mod terminal;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: glibc's allocator showed lock contention between the gateway's worker threads
/// under load (see bench/README.md); mimalloc's per-thread heaps avoid it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
