//! `serve --archive`: the web archive's files at the archive URL's path, so
//! that one process behind the proxy answers the reader links and the
//! archive pages. Which request names which file is decided by
//! [`crate::archive::resolve`], the archive's one map of its paths (nothing
//! encoded, no `..`, no file the archive does not write); this only reads
//! the file and answers.

use std::path::PathBuf;

use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::archive::{Resolved, resolve};

/// Where the archive is served from and at.
#[derive(Debug, Clone)]
pub struct Mount {
    /// The archive URL's path (`/newsletters`), or empty for the root.
    pub path: String,
    /// The folder `briefing archive` writes (`archive.out` or `--archive DIR`).
    pub dir: PathBuf,
}

/// Marks a response as a public archive page: the guard then lets proxies
/// cache it and search engines index it, unlike the reader pages.
#[derive(Debug, Clone, Copy)]
pub struct Public;

/// Archive pages are email HTML: inline styles and remote images, never a
/// script, a form or a frame, whatever an item's Markdown held.
pub const CSP: &str = "default-src 'none'; img-src https: data:; style-src 'unsafe-inline'; \
                       base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// How long a proxy or browser may keep a page: an edition's page never
/// changes, an index or feed changes at the next send.
const CACHE: &str = "public, max-age=300";

/// The answer to a request for the archive, or `None` when the path is not
/// the archive's (the caller's 404).
pub async fn answer(mount: &Mount, method: &Method, uri: &Uri) -> Option<Response> {
    let resolved = resolve(&mount.path, uri.path())?;
    if method != Method::GET && method != Method::HEAD {
        let mut res = StatusCode::METHOD_NOT_ALLOWED.into_response();
        (res.headers_mut()).insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Some(res);
    }
    match resolved {
        Resolved::Redirect(to) => {
            let to = match uri.query() {
                Some(q) => format!("{to}?{q}"),
                None => to,
            };
            let mut res = StatusCode::MOVED_PERMANENTLY.into_response();
            let location = HeaderValue::from_str(&to).ok()?;
            res.headers_mut().insert(header::LOCATION, location);
            Some(res)
        }
        Resolved::File { path, content_type } => {
            let file = mount.dir.join(path);
            let read = tokio::task::spawn_blocking(move || std::fs::read(file)).await;
            let body = match read {
                Ok(Ok(body)) => body,
                // Not written (yet): the caller's 404.
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => return None,
                Ok(Err(e)) => {
                    tracing::warn!("cannot read an archive file: {e}");
                    return Some(StatusCode::INTERNAL_SERVER_ERROR.into_response());
                }
                Err(_) => return Some(StatusCode::INTERNAL_SERVER_ERROR.into_response()),
            };
            let mut res = (StatusCode::OK, body).into_response();
            let h = res.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static(CACHE));
            res.extensions_mut().insert(Public);
            Some(res)
        }
    }
}
