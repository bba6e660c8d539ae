//! Unsubscribe tokens and URLs. The token lets the newsroom's web stack accept
//! a one-click unsubscribe (RFC 8058) without a database lookup and without
//! putting a guessable bare address in the link.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::Sha256;
use thiserror::Error;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the HMAC kept in a token: 128 bits is far beyond guessing range
/// and keeps URLs short.
pub const TOKEN_BYTES: usize = 16;

/// Secret for the outbox-only development mode. **Never** use it for a real
/// send: anyone reading this source could forge unsubscribe links. The send
/// command must refuse SMTP delivery when the configured secret equals this.
pub const DEV_SECRET: &[u8] = b"briefing-development-secret-for-outbox-only-never-for-smtp";

/// Characters left as-is in query values: RFC 3986 unreserved.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TokenError {
    #[error(
        "the unsubscribe or preferences page's URL {0:?} must be an absolute https:// URL without query, fragment, spaces or control characters"
    )]
    InvalidBaseUrl(String),
}

/// The unsubscribe token for one reader of one newsletter.
///
/// Algorithm (version 1), for the web stack that verifies it:
///
/// 1. `message = "v1" LF newsletter LF lowercase(email)`, where LF is one
///    byte 0x0A, `newsletter` is the newsletter id exactly as in the `n=`
///    query parameter, and `lowercase` maps ASCII `A`-`Z` to `a`-`z` only
///    (briefing's addresses are ASCII: punycoded domain, ASCII local part).
///    All strings are UTF-8 bytes; there is no trailing LF.
/// 2. `mac = HMAC-SHA256(key = secret, message)`.
/// 3. `token = base64url(mac[0..16])` without padding (RFC 4648 section 5):
///    always 22 characters from `A-Z a-z 0-9 - _`.
///
/// To verify, recompute the token from the `n=` and (percent-decoded) `e=`
/// parameters and compare in constant time. Changing the secret invalidates
/// every outstanding link.
///
/// Test vector: secret `s3cret`, newsletter `am`, email `ana@example.com`
/// gives `Qj8FGsuaAkHDpj8DN-sJmQ`.
pub fn unsubscribe_token(secret: &[u8], newsletter: &str, email: &str) -> String {
    let mac = mac(secret, newsletter, email).finalize().into_bytes();
    URL_SAFE_NO_PAD.encode(&mac[..TOKEN_BYTES])
}

/// Checks a token in constant time (the comparison does not leak how many
/// leading bytes matched).
pub fn verify_token(secret: &[u8], newsletter: &str, email: &str, token: &str) -> bool {
    let Ok(tag) = URL_SAFE_NO_PAD.decode(token) else {
        return false;
    };
    if tag.len() != TOKEN_BYTES {
        return false;
    }
    mac(secret, newsletter, email)
        .verify_truncated_left(&tag)
        .is_ok()
}

fn mac(secret: &[u8], newsletter: &str, email: &str) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(b"v1\n");
    mac.update(newsletter.as_bytes());
    mac.update(b"\n");
    mac.update(email.to_ascii_lowercase().as_bytes());
    mac
}

/// The values of `names` in a signed link's query, each at most once.
/// Other parameters are ignored (link rewriters add their own); a value
/// given twice is refused, since it is ambiguous which one was signed.
pub fn read_query<const N: usize>(
    query: &str,
    names: [&str; N],
) -> Result<[Option<String>; N], &'static str> {
    let mut out: [Option<String>; N] = std::array::from_fn(|_| None);
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        let Some(i) = names.iter().position(|n| *n == k) else {
            continue;
        };
        if out[i].replace(v.into_owned()).is_some() {
            return Err("the link repeats a value");
        }
    }
    Ok(out)
}

/// `<endpoint>?n=<newsletter>&e=<email>&t=<token>`, with `n` and `e`
/// percent-encoded (RFC 3986 unreserved characters kept).
///
/// `endpoint` is the newsroom's unsubscribe page (config
/// `delivery.unsubscribe.url`), e.g. `https://news.example.com/unsubscribe`.
pub fn unsubscribe_url(
    endpoint: &str,
    newsletter: &str,
    email: &str,
    secret: &[u8],
) -> Result<String, TokenError> {
    signed_url(endpoint, newsletter, email, secret)
}

/// The preferences page's link for one reader: the same query and the same
/// token as [`unsubscribe_url`], on the page of config
/// `delivery.preferences.url`. One token serves both pages, so a reader who
/// can unsubscribe can also choose sections, and nothing else can.
pub fn preferences_url(
    endpoint: &str,
    newsletter: &str,
    email: &str,
    secret: &[u8],
) -> Result<String, TokenError> {
    signed_url(endpoint, newsletter, email, secret)
}

fn signed_url(
    endpoint: &str,
    newsletter: &str,
    email: &str,
    secret: &[u8],
) -> Result<String, TokenError> {
    let base = endpoint;
    let valid = base.starts_with("https://")
        && base.len() > "https://".len()
        && base
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'?' | b'#' | b'<' | b'>' | b'"'));
    if !valid {
        return Err(TokenError::InvalidBaseUrl(endpoint.to_owned()));
    }
    Ok(format!(
        "{base}?n={}&e={}&t={}",
        utf8_percent_encode(newsletter, QUERY_VALUE),
        utf8_percent_encode(email, QUERY_VALUE),
        unsubscribe_token(secret, newsletter, email)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_matches_documented_algorithm() {
        // Recompute independently of `mac()` so a change there is caught.
        let mut mac = HmacSha256::new_from_slice(b"s3cret").unwrap();
        mac.update(b"v1\nam\nana@example.com");
        let full = mac.finalize().into_bytes();
        let expected = URL_SAFE_NO_PAD.encode(&full[..16]);
        assert_eq!(
            unsubscribe_token(b"s3cret", "am", "Ana@Example.com"),
            expected
        );
        assert_eq!(expected.len(), 22);
    }

    #[test]
    fn known_vector() {
        // Pinned (computed independently with Python's hmac module) so the
        // web stack's implementation can be checked against it.
        assert_eq!(
            unsubscribe_token(b"s3cret", "am", "Ana@Example.com"),
            "Qj8FGsuaAkHDpj8DN-sJmQ"
        );
    }

    #[test]
    fn verify_accepts_only_the_right_token() {
        let t = unsubscribe_token(b"k", "am", "ana@example.com");
        assert!(verify_token(b"k", "am", "ana@example.com", &t));
        assert!(verify_token(b"k", "am", "ANA@example.com", &t));
        assert!(!verify_token(b"k", "pm", "ana@example.com", &t));
        assert!(!verify_token(b"k", "am", "bob@example.com", &t));
        assert!(!verify_token(b"other", "am", "ana@example.com", &t));
        assert!(!verify_token(b"k", "am", "ana@example.com", &t[..21]));
        assert!(!verify_token(b"k", "am", "ana@example.com", "not base64!"));
        assert!(!verify_token(b"k", "am", "ana@example.com", ""));
    }

    #[test]
    fn newsletter_and_email_are_separated() {
        // "a\nb" + "c" must not collide with "a" + "b\nc".
        assert_ne!(
            unsubscribe_token(b"k", "am", "x@example.com"),
            unsubscribe_token(b"k", "am\nx", "@example.com")
        );
    }

    #[test]
    fn url_is_percent_encoded() {
        let url = unsubscribe_url(
            "https://news.example.com/unsubscribe",
            "am",
            "a+b@example.com",
            b"k",
        )
        .unwrap();
        let token = unsubscribe_token(b"k", "am", "a+b@example.com");
        assert_eq!(
            url,
            format!("https://news.example.com/unsubscribe?n=am&e=a%2Bb%40example.com&t={token}")
        );
    }

    #[test]
    fn preferences_url_carries_the_unsubscribe_token() {
        let u = unsubscribe_url("https://x.example/unsubscribe", "am", "a@b.com", b"k").unwrap();
        let p = preferences_url("https://x.example/preferences", "am", "a@b.com", b"k").unwrap();
        assert_eq!(u.split_once('?').unwrap().1, p.split_once('?').unwrap().1);
        assert!(p.starts_with("https://x.example/preferences?n=am&"), "{p}");
        assert!(preferences_url("http://x.example/p", "am", "a@b.com", b"k").is_err());
    }

    #[test]
    fn url_refuses_bad_base() {
        for base in [
            "http://news.example.com",
            "https://",
            "https://x.com/?a=b",
            "https://x.com/\r\nX: y",
            "news.example.com",
        ] {
            assert!(
                unsubscribe_url(base, "am", "a@b.com", b"k").is_err(),
                "{base}"
            );
        }
    }
}
