//! The endpoint's HTTP side. Fixed routes (the two pages at the paths of
//! their configured URLs, and the health check), and with `--archive` the
//! archive's files, mapped by the archive's own layout only.
//! Every request has a deadline, a bounded head and a bounded body; every
//! response forbids framing, referrers and sniffing, and none sets a cookie.
//! The reader pages are never cached and never redirect (RFC 8058: a
//! redirected POST is not followed); only an archive folder asked for
//! without its `/` is redirected.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_http::timeout::TimeoutLayer;

use super::archive;
use super::form::{self, Fields};
use super::link::{Reader, Refusal};
use super::pages::{self, CSP, Ctx, Notice};
use super::subscribe;
use super::{Endpoint, HEALTH_PATH, Letter, Lift, Via, choose};
use crate::ledger::SuppressionScope;

/// A one-click body is about 200 bytes, the preferences form a few hundred.
pub const BODY_LIMIT: usize = 16 * 1024;
/// A request's line and headers. Browsers send the site's cookies along,
/// which can be large; nginx's default allows 8 KB per header line.
pub const HEAD_LIMIT: usize = 32 * 1024;
/// How long a client may take to send a request's head (slow-loris), and
/// how long a kept-alive connection may stay idle.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request may take in all, body and ledger included. The
/// ledger waits up to 10 s for another process's lock.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Connections served at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 512;
/// How long a stop waits for the requests in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub(super) type Shared = Arc<Endpoint>;

/// The address a request's connection came from.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::SocketAddr);

pub fn router(ep: Shared) -> Router {
    Router::new()
        .route(
            &ep.unsubscribe.path,
            get(unsubscribe_get).post(unsubscribe_post),
        )
        .route(
            &ep.preferences.path,
            get(preferences_get).post(preferences_post),
        )
        .route(
            &ep.signup.page.path,
            get(subscribe::page_get).post(subscribe::page_post),
        )
        .route(
            &ep.signup.confirm.path,
            get(subscribe::confirm_get).post(subscribe::confirm_post),
        )
        .route(HEALTH_PATH, get(health))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(middleware::from_fn_with_state(ep.clone(), guard))
        .with_state(ep)
}

/// What a log line calls a request: never its query (which holds the
/// reader's address) nor a stray path (which might).
fn route_name(ep: &Endpoint, path: &str) -> &'static str {
    let archive = |p: &str| {
        (ep.archive.as_ref()).is_some_and(|m| p.starts_with(&format!("{}/", m.path)) || p == m.path)
    };
    match path {
        p if p == ep.unsubscribe.path => "unsubscribe",
        p if p == ep.preferences.path => "preferences",
        p if p == ep.signup.page.path => "signup",
        p if p == ep.signup.confirm.path => "signup-confirm",
        HEALTH_PATH => "health",
        p if archive(p) => "archive",
        _ => "other",
    }
}

/// Logs each request and adds the headers every response gets.
async fn guard(State(ep): State<Shared>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = route_name(&ep, req.uri().path());
    tracing::debug!(method = %method, path = req.uri().path(), "request");
    let mut res = next.run(req).await;
    let public = res.extensions().get::<archive::Public>().is_some();
    let h = res.headers_mut();
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        // The page's own URL carries the reader's address and token.
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    // The archive is public and the same for everyone; the reader pages are
    // one reader's and neither cached nor indexed.
    if !public {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(
            "x-robots-tag",
            HeaderValue::from_static("noindex, nofollow"),
        );
    }
    h.remove(header::SET_COOKIE);
    tracing::info!(
        method = %method,
        route,
        status = res.status().as_u16(),
        ms = start.elapsed().as_millis() as u64,
        "request"
    );
    res
}

pub(super) fn html(status: StatusCode, body: String) -> Response {
    let mut res = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&CSP) {
        res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    res
}

pub(super) fn unavailable(ep: &Endpoint) -> Response {
    let mut res = html(
        StatusCode::SERVICE_UNAVAILABLE,
        pages::unavailable(&ep.site, &ep.language),
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    res
}

pub(super) fn bad_request(ep: &Endpoint, status: StatusCode) -> Response {
    html(
        status,
        pages::bad_request(&ep.site, &ep.language, status.as_u16()),
    )
}

/// The reader and newsletter of a link, or the page that refuses it.
fn verified<'a>(ep: &'a Endpoint, query: Option<&str>) -> Result<(Reader, &'a Letter), Response> {
    let r = ep.reader(query).map_err(|why| {
        let status = match why {
            Refusal::Malformed(_) => StatusCode::BAD_REQUEST,
            Refusal::Forged => StatusCode::FORBIDDEN,
        };
        tracing::info!(status = status.as_u16(), why = ?why, "refused a reader link");
        html(status, pages::refused(&ep.site, &ep.language, why))
    })?;
    let Some(letter) = ep.letter(&r.newsletter) else {
        tracing::info!(newsletter = %r.newsletter, "a reader link names a newsletter no longer configured");
        return Err(html(
            StatusCode::NOT_FOUND,
            pages::gone(&ep.site, &ep.language),
        ));
    };
    Ok((r, letter))
}

fn ctx<'a>(ep: &'a Endpoint, letter: &'a Letter, r: &'a Reader) -> Ctx<'a> {
    Ctx {
        site: &ep.site,
        language: &ep.language,
        letter,
        reader: r,
        preferences_url: format!("{}?{}", ep.preferences.url, r.query()),
    }
}

pub(super) fn user_agent(h: &HeaderMap) -> Option<String> {
    h.get(header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// Unwraps a ledger answer or returns the 503 page.
macro_rules! or_unavailable {
    ($ep:expr, $e:expr) => {
        match $e {
            Ok(v) => v,
            Err(_) => return unavailable($ep),
        }
    };
}

/// Opening the unsubscribe link never unsubscribes: link scanners and
/// previews open every link in a message.
async fn unsubscribe_get(State(ep): State<Shared>, req: Request) -> Response {
    let (r, letter) = match verified(&ep, req.uri().query()) {
        Ok(v) => v,
        Err(res) => return res,
    };
    let standing = or_unavailable!(&ep, ep.standing(&r, false).await);
    html(
        StatusCode::OK,
        pages::unsubscribe_page(&ctx(&ep, letter, &r), &standing),
    )
}

/// What a POST to the unsubscribe link asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UnsubscribeAction {
    /// RFC 8058: `List-Unsubscribe=One-Click`, or an empty body.
    OneClick,
    /// The confirm page's button.
    Confirm,
    /// The undo button.
    Resubscribe,
}

fn unsubscribe_action(f: &Fields) -> Option<UnsubscribeAction> {
    match f.get("action") {
        None => f
            .get("List-Unsubscribe")
            .is_none_or(|v| v.eq_ignore_ascii_case("One-Click"))
            .then_some(UnsubscribeAction::OneClick),
        Some("unsubscribe") => Some(UnsubscribeAction::Confirm),
        Some("resubscribe") => Some(UnsubscribeAction::Resubscribe),
        Some(_) => None,
    }
}

/// The mailbox provider's one-click POST, and the pages' buttons. The
/// unsubscribe is on disk before the 200.
async fn unsubscribe_post(State(ep): State<Shared>, req: Request) -> Response {
    let (r, letter) = match verified(&ep, req.uri().query()) {
        Ok(v) => v,
        Err(res) => return res,
    };
    let ua = user_agent(req.headers());
    let fields = match form::read(req).await {
        Ok(f) => f,
        Err(status) => return bad_request(&ep, status),
    };
    let Some(action) = unsubscribe_action(&fields) else {
        return bad_request(&ep, StatusCode::BAD_REQUEST);
    };
    let c = ctx(&ep, letter, &r);
    let scope = SuppressionScope::Newsletter(r.newsletter.clone());
    let via = match action {
        UnsubscribeAction::OneClick => Via::OneClick,
        UnsubscribeAction::Confirm => Via::UnsubscribePage,
        UnsubscribeAction::Resubscribe => {
            let lift = or_unavailable!(&ep, ep.resubscribe(&r, scope).await);
            let standing = or_unavailable!(&ep, ep.standing(&r, false).await);
            return html(StatusCode::OK, pages::resubscribed(&c, lift, &standing));
        }
    };
    let (_, entry) = or_unavailable!(&ep, ep.unsubscribe(&r, scope, via, ua.as_deref()).await);
    html(StatusCode::OK, pages::unsubscribed(&c, &entry, true))
}

async fn preferences_get(State(ep): State<Shared>, req: Request) -> Response {
    let (r, letter) = match verified(&ep, req.uri().query()) {
        Ok(v) => v,
        Err(res) => return res,
    };
    let standing = or_unavailable!(&ep, ep.standing(&r, true).await);
    html(
        StatusCode::OK,
        pages::preferences_page(&ctx(&ep, letter, &r), &standing, None),
    )
}

/// The preferences page's forms: save the sections, unsubscribe from this
/// newsletter or all, or subscribe again. The page is shown again with
/// what was done.
async fn preferences_post(State(ep): State<Shared>, req: Request) -> Response {
    let (r, letter) = match verified(&ep, req.uri().query()) {
        Ok(v) => v,
        Err(res) => return res,
    };
    let ua = user_agent(req.headers());
    let fields = match form::read(req).await {
        Ok(f) => f,
        Err(status) => return bad_request(&ep, status),
    };
    let this = SuppressionScope::Newsletter(r.newsletter.clone());
    let (status, notice) = match fields.get("action") {
        Some("save") => match choose(letter, &fields) {
            Ok(p) => {
                or_unavailable!(&ep, ep.save(&r, p).await);
                (StatusCode::OK, Notice::Saved)
            }
            Err(m) => (StatusCode::BAD_REQUEST, Notice::Error(m)),
        },
        Some("unsubscribe") => {
            let via = Via::PreferencesPage;
            or_unavailable!(&ep, ep.unsubscribe(&r, this, via, ua.as_deref()).await);
            (StatusCode::OK, Notice::Unsubscribed)
        }
        Some("unsubscribe-all") => {
            let via = Via::PreferencesPage;
            let all = SuppressionScope::All;
            or_unavailable!(&ep, ep.unsubscribe(&r, all, via, ua.as_deref()).await);
            (StatusCode::OK, Notice::UnsubscribedAll)
        }
        Some("resubscribe") => {
            let lift: Lift = or_unavailable!(&ep, ep.resubscribe(&r, this).await);
            (StatusCode::OK, Notice::Lifted(lift))
        }
        Some("resubscribe-all") => {
            let all = SuppressionScope::All;
            let lift: Lift = or_unavailable!(&ep, ep.resubscribe(&r, all).await);
            (StatusCode::OK, Notice::Lifted(lift))
        }
        _ => return bad_request(&ep, StatusCode::BAD_REQUEST),
    };
    let standing = or_unavailable!(&ep, ep.standing(&r, true).await);
    html(
        status,
        pages::preferences_page(&ctx(&ep, letter, &r), &standing, Some(notice)),
    )
}

/// For the proxy: 200 while the ledger answers.
async fn health(State(ep): State<Shared>) -> Response {
    let (status, body) = match ep.healthy().await {
        true => (StatusCode::OK, "ok\n"),
        false => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the ledger does not answer\n",
        ),
    };
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Any other path: an archive file with `--archive`, else the 404 page.
async fn not_found(State(ep): State<Shared>, req: Request) -> Response {
    if let Some(mount) = &ep.archive
        && let Some(res) = archive::answer(mount, req.method(), req.uri()).await
    {
        return res;
    }
    html(
        StatusCode::NOT_FOUND,
        pages::not_found(&ep.site, &ep.language),
    )
}

/// Serves HTTP/1 connections until `shutdown` resolves, then lets the
/// requests in flight finish (up to [`SHUTDOWN_GRACE`]).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_header_size(HEAD_LIMIT)
        .max_buf_size(HEAD_LIMIT.max(BODY_LIMIT) * 2);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => s,
            () = &mut shutdown => break,
        };
        let Ok(slot) = slot else { break };
        let stream = tokio::select! {
            a = listener.accept() => a,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match stream {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, most likely: let some close.
                tracing::warn!("cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Each request carries its connection's peer, for the sign-up
        // page's per-client limit.
        let app = app.clone();
        let svc = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(Peer(peer));
            tower::ServiceExt::oneshot(app.clone(), req.map(axum::body::Body::new))
        });
        let conn = http.serve_connection(TokioIo::new(stream), svc);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("connection ended: {e}");
            }
            drop(slot);
        });
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("stopped with requests still in flight after {SHUTDOWN_GRACE:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(body: &str) -> Fields {
        Fields::from_urlencoded(body.as_bytes()).unwrap()
    }

    #[test]
    fn one_click_bodies_and_the_pages_buttons_are_told_apart() {
        use UnsubscribeAction::*;
        for (body, want) in [
            ("List-Unsubscribe=One-Click", Some(OneClick)),
            ("List-Unsubscribe=one-click", Some(OneClick)),
            ("", Some(OneClick)),
            ("action=unsubscribe", Some(Confirm)),
            ("action=resubscribe", Some(Resubscribe)),
            ("List-Unsubscribe=Something-Else", None),
            ("action=delete", None),
        ] {
            assert_eq!(unsubscribe_action(&fields(body)), want, "{body}");
        }
    }
}
