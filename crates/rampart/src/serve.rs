//! `rampart serve`: config → state → listeners, plus signals.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use rampart_gateway::state::{ConfigSource, Gateway};
use rampart_policy::{Config, LogFormat, UpstreamKind};
use tracing_subscriber::EnvFilter;

use crate::cli::ServeArgs;

/// Sets up `tracing` on stderr (stdout carries only the listen address and the one-time admin
/// credential). `RAMPART_LOG` overrides the level.
pub fn init_logging(format: &str, level: &str) {
    let filter = EnvFilter::try_from_env("RAMPART_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    // No colours: the text log escapes every control character (see `terminal`), ANSI
    // escapes included, so that no logged string can forge a line or drive a terminal.
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false);
    let _ = if format == "json" {
        builder
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .try_init()
    } else {
        builder.with_writer(crate::terminal::EscapedStderr).try_init()
    };
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let (mut config, source) = match &args.config {
        Some(path) => {
            let c = match Config::from_file(&path.display().to_string()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return Ok(ExitCode::from(1));
                }
            };
            (c, ConfigSource::File(PathBuf::from(path)))
        }
        None => (Config::default(), ConfigSource::Defaults),
    };
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    if let Some(dir) = args.data_dir {
        config.server.data_dir = dir;
    }
    let format = match (args.log_format.as_deref(), config.log.format) {
        (Some(f), _) => f.to_string(),
        (None, LogFormat::Json) => "json".into(),
        (None, LogFormat::Text) => "text".into(),
    };
    init_logging(&format, &config.log.level);

    let listen = config.server.listen.clone();
    let tls = match &config.server.tls {
        Some(t) => Some(rampart_gateway::server::tls_acceptor(t)?),
        None => None,
    };

    // The built-in demo model runs on its own loopback port, so requests to it take the same
    // upstream path as a real model API.
    let demo_base = if config.upstreams.iter().any(|u| u.kind == UpstreamKind::Demo) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot start the demo model")?;
        let addr = l.local_addr()?;
        tokio::spawn(rampart_gateway::server::serve(
            l,
            None,
            rampart_gateway::demo::router(Default::default()),
            std::future::pending(),
        ));
        Some(format!("http://{addr}/v1"))
    } else {
        None
    };

    let gw = Arc::new(Gateway::new(config, source, demo_base).context("cannot start the gateway")?);
    if let Some(secret) = gw.ensure_admin_credential()? {
        println!("admin credential (shown once, store it now): {secret}");
        rampart_gateway::audit::admin(
            &gw,
            "system:first-start",
            "key.create",
            serde_json::json!({"owner": "admin", "admin": true, "reason": "first-start admin credential"}),
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot record the admin credential's creation: {}", e.message()))?;
    }

    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on `{listen}`"))?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("rampart listening on {scheme}://{addr}");
    tracing::info!(%addr, tls = tls.is_some(), "gateway started");

    rampart_gateway::audit::spawn_retention(&gw);
    rampart_gateway::audit::spawn_refusal_records(&gw);
    rampart_gateway::budgets::spawn_flush(&gw);

    #[cfg(unix)]
    {
        let gw = gw.clone();
        tokio::spawn(async move {
            let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
                return;
            };
            while hup.recv().await.is_some() {
                let _ = gw.reload("system:sighup").await;
            }
        });
    }

    rampart_gateway::server::serve(listener, tls, rampart_gateway::app::app(gw.clone()), shutdown_signal()).await;
    rampart_gateway::budgets::flush(&gw).await;
    Ok(ExitCode::SUCCESS)
}
