//! The preview's HTTP side: a fixed set of routes, each rendering from the
//! in-memory project. No route maps a URL path to a file, so nothing on disk
//! is reachable except through what the preview renders; only newsletter ids
//! from config are served, anything else is a 404.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::Stream;

use super::Shared;
use super::pages::{self, PageQuery, Part};

const CSS: &str = include_str!("assets/preview.css");
const JS: &str = include_str!("assets/preview.js");

/// The preview's pages may load their own scripts and styles and frame the
/// digests it serves; nothing else.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";
/// A digest may show its images (absolute URLs on the newsroom's site) and
/// its inline styles; it may not run scripts or be framed by other sites.
const EMAIL_CSP: &str = "default-src 'none'; img-src * data:; style-src 'unsafe-inline'; font-src * data:; frame-ancestors 'self'";

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/newsletter/{id}", get(edition))
        .route("/newsletter/{id}/email.html", get(email_html))
        .route("/newsletter/{id}/email.txt", get(email_txt))
        .route("/events", get(events))
        .route("/assets/preview.css", get(css))
        .route("/assets/preview.js", get(js))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), guard))
        .with_state(shared)
}

/// Answers only requests addressed to this server by a loopback name when it
/// listens on loopback: a web page elsewhere cannot point a DNS name at
/// 127.0.0.1 and read the unpublished editions (DNS rebinding). Adds the
/// headers every response gets.
async fn guard(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    if let Some(port) = shared.loopback_port {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        if !host_is_loopback(host, port) {
            return (
                StatusCode::FORBIDDEN,
                "this preview only answers to 127.0.0.1, localhost or [::1]\n",
            )
                .into_response();
        }
    }
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    res
}

/// `127.0.0.1:1111`, `localhost:1111`, `[::1]:1111`.
pub fn host_is_loopback(host: &str, port: u16) -> bool {
    let Some((name, p)) = host.rsplit_once(':') else {
        return false;
    };
    p.parse::<u16>() == Ok(port)
        && (name.eq_ignore_ascii_case("localhost")
            || name == "[::1]"
            || name
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback()))
}

fn html(status: StatusCode, body: String, csp: &'static str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, csp),
        ],
        body,
    )
        .into_response()
}

/// Runs `f` over the project on the blocking pool: rendering is CPU work.
async fn with_project<T: Send + 'static>(
    shared: Arc<Shared>,
    f: impl FnOnce(&super::Project, &Shared) -> T + Send + 'static,
) -> Result<T, Response> {
    tokio::task::spawn_blocking(move || {
        let p = shared.read();
        f(&p, &shared)
    })
    .await
    .map_err(|e| {
        tracing::error!("preview page failed: {e}");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the page failed to render\n",
        )
            .into_response()
    })
}

async fn index(State(shared): State<Arc<Shared>>, Query(q): Query<PageQuery>) -> Response {
    match with_project(shared, move |p, _| pages::index(p, &q)).await {
        Ok(body) => html(StatusCode::OK, body, PAGE_CSP),
        Err(r) => r,
    }
}

async fn edition(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let page = with_project(shared, move |p, s| {
        pages::edition_page(p, &id, &q, &s.editor_url)
    })
    .await;
    match page {
        Ok(Some(body)) => html(StatusCode::OK, body, PAGE_CSP),
        Ok(None) => not_found().await,
        Err(r) => r,
    }
}

async fn email_html(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    match with_project(shared, move |p, _| {
        pages::email_part(p, &id, &q, Part::Html)
    })
    .await
    {
        Ok(Some(Ok(body))) => html(StatusCode::OK, body, EMAIL_CSP),
        Ok(Some(Err(placeholder))) => html(StatusCode::NOT_FOUND, placeholder, EMAIL_CSP),
        Ok(None) => not_found().await,
        Err(r) => r,
    }
}

async fn email_txt(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let text = |status, body| {
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            body,
        )
            .into_response()
    };
    match with_project(shared, move |p, _| {
        pages::email_part(p, &id, &q, Part::Text)
    })
    .await
    {
        Ok(Some(Ok(body))) => text(StatusCode::OK, body),
        Ok(Some(Err(why))) => text(StatusCode::NOT_FOUND, why + "\n"),
        Ok(None) => not_found().await,
        Err(r) => r,
    }
}

/// Server-Sent Events: the status now, then after every change of it. A
/// page compares the version with its own and refreshes when they differ.
async fn events(
    State(shared): State<Arc<Shared>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = shared.status.subscribe();
    let stream = futures_util::stream::unfold((rx, true), |(mut rx, first)| async move {
        if !first {
            // Ends the stream when the server shuts down.
            rx.changed().await.ok()?;
        }
        let status = *rx.borrow_and_update();
        let data = format!(
            r#"{{"version":{},"building":{}}}"#,
            status.version, status.building
        );
        Some((Ok(Event::default().event("status").data(data)), (rx, false)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    (StatusCode::OK, headers, body).into_response()
}

async fn not_found() -> Response {
    html(StatusCode::NOT_FOUND, pages::not_found(), PAGE_CSP)
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(shared);
    // Open event streams would keep a graceful shutdown waiting forever, so
    // stop accepting and drop them instead.
    tokio::select! {
        r = axum::serve(listener, app) => r,
        () = shutdown => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        assert!(host_is_loopback("127.0.0.1:1111", 1111));
        assert!(host_is_loopback("localhost:1111", 1111));
        assert!(host_is_loopback("LOCALHOST:1111", 1111));
        assert!(host_is_loopback("[::1]:1111", 1111));
        assert!(!host_is_loopback("127.0.0.1:2222", 1111));
        assert!(!host_is_loopback("evil.example:1111", 1111));
        assert!(!host_is_loopback("127.0.0.1", 1111));
        assert!(!host_is_loopback("", 1111));
    }
}
