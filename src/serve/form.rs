//! The body of a POST to a reader page, as name/value pairs. RFC 8058's
//! `List-Unsubscribe=One-Click` comes as `multipart/form-data` (what Gmail
//! sends), as `application/x-www-form-urlencoded`, or not at all; the pages'
//! own forms are urlencoded. Any other body is read as urlencoded too: the
//! link, not the body, is the credential, so there is nothing to gain from
//! refusing a client's odd content type.

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{StatusCode, header};

/// More fields than any of our forms has (the preferences form has one per
/// region and topic).
pub const MAX_FIELDS: usize = 200;

/// A body's fields, in order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    pub fn from_urlencoded(body: &[u8]) -> Result<Fields, StatusCode> {
        let mut out = Vec::new();
        for (k, v) in form_urlencoded::parse(body) {
            if out.len() == MAX_FIELDS {
                return Err(StatusCode::BAD_REQUEST);
            }
            out.push((k.into_owned(), v.into_owned()));
        }
        Ok(Fields(out))
    }

    /// The first value of `name`.
    pub fn get<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.all(name).next()
    }

    /// Every value of `name`, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads the body. The size limit is the router's (a body past it is a
/// 413); a multipart body that does not parse, or one that stops short, is
/// a 400.
pub async fn read(req: Request) -> Result<Fields, StatusCode> {
    read_any(req).await.map_err(|status| match status {
        // What goes wrong reading a client's body is the client's doing.
        s if s.is_server_error() => StatusCode::BAD_REQUEST,
        s => s,
    })
}

async fn read_any(req: Request) -> Result<Fields, StatusCode> {
    let content_type = req.headers().get(header::CONTENT_TYPE).cloned();
    let multipart = (content_type.as_ref())
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.get(..19)
                .is_some_and(|t| t.eq_ignore_ascii_case("multipart/form-data"))
        });
    // The whole body first, within the router's limit, whatever it holds:
    // a connection closed with bytes of its request unread is reset, and
    // the reset can destroy the answer on its way to the client (a
    // multipart reader stops at the closing boundary, before the CRLF
    // that follows it).
    let body = Bytes::from_request(req, &())
        .await
        .map_err(|r| r.status())?;
    if !multipart {
        return Fields::from_urlencoded(&body);
    }
    let mut again = Request::new(axum::body::Body::from(body));
    if let Some(t) = content_type {
        again.headers_mut().insert(header::CONTENT_TYPE, t);
    }
    let mut m = Multipart::from_request(again, &())
        .await
        .map_err(|r| r.status())?;
    let mut out = Vec::new();
    while let Some(field) = m.next_field().await.map_err(|e| e.status())? {
        if out.len() == MAX_FIELDS {
            return Err(StatusCode::BAD_REQUEST);
        }
        let name = field.name().unwrap_or_default().to_owned();
        let value = field.text().await.map_err(|e| e.status())?;
        out.push((name, value));
    }
    Ok(Fields(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn repeated_names_keep_every_value_in_order() {
        let f =
            Fields::from_urlencoded(b"action=save&region=world&topic=a&region=national+x").unwrap();
        assert_eq!(f.get("action"), Some("save"));
        assert_eq!(f.all("region").collect::<Vec<_>>(), ["world", "national x"]);
        assert_eq!(f.get("nope"), None);
        assert_eq!(Fields::from_urlencoded(b"").unwrap(), Fields::default());
    }

    #[test]
    fn too_many_fields_are_refused() {
        let body = "a=1&".repeat(MAX_FIELDS + 1);
        assert_eq!(
            Fields::from_urlencoded(body.as_bytes()),
            Err(StatusCode::BAD_REQUEST)
        );
    }

    proptest! {
        #[test]
        fn any_bytes_read_without_panicking(body in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = Fields::from_urlencoded(&body);
        }
    }
}
