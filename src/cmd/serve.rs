//! `briefing serve`: open the endpoint (config, secrets, ledger), listen,
//! print the URL, serve until SIGTERM or Ctrl-C. The endpoint lives in
//! `crate::serve`; this file only wires it up.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result};

use super::Ctx;
use crate::cli::ServeArgs;
use crate::exit::{Exit, usage};
use crate::serve::archive::Mount;
use crate::serve::{Endpoint, HEALTH_PATH, server};

const DEFAULT_PORT: u16 = 8025;

pub fn run(ctx: &Ctx, args: &ServeArgs) -> Result<Exit> {
    let port = match (args.bind.port, args.port) {
        (Some(_), Some(_)) => {
            return Err(usage(
                "give the port once: in --bind ADDR:PORT or in --port, not both",
            ));
        }
        (Some(p), None) | (None, Some(p)) => p,
        (None, None) => DEFAULT_PORT,
    };
    let newsroom = ctx.newsroom()?;
    let mut endpoint = Endpoint::open(&newsroom)?;
    endpoint.listening_on(args.bind.ip);
    if let Some(dir) = &args.archive {
        endpoint.archive = Some(archive_mount(ctx, &newsroom, dir.as_deref())?);
    }
    let endpoint = Arc::new(endpoint);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let addr = SocketAddr::new(args.bind.ip, port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (is another serve running? try --port)"))?;
        let addr = listener.local_addr()?;
        if !addr.ip().is_loopback() {
            tracing::warn!(
                "listening on {addr}: put it behind a TLS reverse proxy; mail clients send one-click unsubscribes only over https"
            );
        }
        let host = match addr {
            SocketAddr::V4(a) if a.ip().is_unspecified() => "127.0.0.1".to_string(),
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        };
        ctx.console.summary(&format!(
            "Serving {}'s reader pages at http://{host}:{}/ (unsubscribe {}, preferences {}, sign-up {}, health {HEALTH_PATH}); stop with Ctrl-C or SIGTERM",
            endpoint.site,
            addr.port(),
            endpoint.unsubscribe.path,
            endpoint.preferences.path,
            endpoint.signup.page.path,
        ));
        if let Some(m) = &endpoint.archive {
            ctx.console.summary(&format!(
                "Serving the web archive at http://{host}:{}{}/ from {}",
                addr.port(),
                m.path,
                m.dir.display()
            ));
        }
        server::serve(listener, server::router(endpoint.clone()), stop()).await;
        tracing::info!("stopped");
        anyhow::Ok(())
    })?;
    // The ledger's thread finishes what was queued when the endpoint goes.
    drop(runtime);
    drop(endpoint);
    Ok(Exit::Ok)
}

/// Where `--archive` serves from: `DIR` (relative to where serve was
/// started, like `archive --out`) or `archive.out`, at the archive URL's
/// path. A folder not written yet is only a warning: its pages are 404s
/// until `briefing archive` runs.
fn archive_mount(
    ctx: &Ctx,
    newsroom: &crate::config::Newsroom,
    dir: Option<&Path>,
) -> Result<Mount> {
    let Some(archive) = &newsroom.config.archive else {
        return Err(usage(
            "serve --archive needs an archive: section in config.yaml (its url says where the archive is served)",
        ));
    };
    let dir = dir.map_or_else(|| archive.out.clone(), Path::to_path_buf);
    let path = archive.path().trim_end_matches('/').to_string();
    if !dir.join("index.html").is_file() {
        ctx.console.warn(&format!(
            "{} holds no archive yet: its pages answer 404 until `briefing archive` writes them",
            dir.display()
        ));
    }
    Ok(Mount { path, dir })
}

/// SIGTERM (systemd's stop) or SIGINT (Ctrl-C).
async fn stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
