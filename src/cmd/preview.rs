//! `briefing preview`: load the newsroom, start the watcher and the local
//! server, print the URL, serve until Ctrl-C. The stages live in
//! `crate::preview`; this file only wires them together.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context as _, Result};

use super::{Ctx, parse_at};
use crate::cli::PreviewArgs;
use crate::exit::Exit;
use crate::messages::plural;
use crate::preview::watch::Watcher;
use crate::preview::{self, Project, Shared};

pub fn run(ctx: &Ctx, args: &PreviewArgs) -> Result<Exit> {
    // Absolute, so that paths in the project match what the watcher reports.
    let config = std::fs::canonicalize(&ctx.config)
        .with_context(|| format!("cannot open the config file {}", ctx.config.display()))?;
    let (project, first) = Project::open(&config, args.at.clone());
    if let (Some(at), Some(n)) = (&args.at, project.newsroom()) {
        parse_at("--at", Some(at), &n.config)?;
    }
    // The same diagnostics `check` prints; the page shows them too.
    ctx.console.diagnostics(&project.diagnostics());
    tracing::info!(
        "loaded {} in {:.1} ms",
        plural(project.items().len(), "item"),
        first.elapsed.as_secs_f64() * 1000.0
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(ctx, args, project))?;
    Ok(Exit::Ok)
}

async fn serve(ctx: &Ctx, args: &PreviewArgs, project: Project) -> Result<()> {
    let addr = SocketAddr::new(args.bind, args.port);
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} (is another preview running? try --port)")
    })?;
    let addr = listener.local_addr()?;
    let loopback = addr.ip().is_loopback();
    if !loopback {
        tracing::warn!(
            "listening on {addr}: anyone who can reach this machine can read the unpublished editions"
        );
    }
    let shared = Arc::new(Shared::new(
        project,
        args.editor_url.clone(),
        loopback.then_some(addr.port()),
    ));

    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let watcher = Watcher::start(tx).context("cannot watch the newsroom's files")?;
    tokio::spawn(preview::rebuild_loop(shared.clone(), rx, watcher));

    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else if addr.is_ipv6() {
        format!("[{}]", addr.ip())
    } else {
        addr.ip().to_string()
    };
    let url = format!("http://{host}:{}/", addr.port());
    ctx.console
        .summary(&format!("Previewing at {url} (Ctrl-C to stop)"));
    if args.open {
        open_browser(&url);
    }
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    preview::server::serve(listener, shared, shutdown)
        .await
        .context("the preview server stopped")?;
    Ok(())
}

/// Opens `url` with the desktop's default browser; a failure is only logged.
fn open_browser(url: &str) {
    let mut cmd = if cfg!(target_os = "macos") {
        std::process::Command::new("open")
    } else if cfg!(windows) {
        let mut c = std::process::Command::new("cmd");
        c.args(["/C", "start", ""]);
        c
    } else {
        std::process::Command::new("xdg-open")
    };
    if let Err(e) = cmd.arg(url).spawn() {
        tracing::warn!("cannot open a browser ({e}); open {url} yourself");
    }
}
