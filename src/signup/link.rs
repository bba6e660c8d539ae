//! The confirmation link: `?e=<email>&n=<id>,<id>&i=<issued>&x=<expiry>&t=<token>`.
//! It is the whole sign-up, held by nobody until it is confirmed: the token
//! signs every value with the newsroom's unsubscribe secret, so a changed
//! address, newsletter or time confirms nothing, and the expiry bounds how
//! long a link left in a mailbox can be used. It carries nothing a
//! stranger typed but the address: a name is asked for on the page the
//! link opens, from the mailbox's owner.
//!
//! Token (version 1): `HMAC-SHA256(secret, "signup-v1" LF lowercase(email)
//! LF ids joined by "," LF issued LF expiry)`, the first 16 bytes,
//! base64url without padding; the times in Unix seconds. The issue time is
//! what a later unsubscribe is compared with: a link used again after the
//! reader unsubscribed does not undo it. Unsubscribe tokens sign `"v1" LF …`, so neither kind of
//! token is ever the other's.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::audience::normalize_email;
use crate::config::valid_id;
use crate::mail::token::{TOKEN_BYTES, read_query};

/// Newsletters one sign-up may name: more than any newsroom configures.
pub const MAX_NEWSLETTERS: usize = 64;
/// The longest query a link of ours can have, with room for what link
/// rewriters append.
pub const MAX_QUERY: usize = 4096;

/// What a confirmation link asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Normalised (see [`normalize_email`]).
    pub email: String,
    /// Configured newsletter ids, in the newsroom's order, each once.
    pub newsletters: Vec<String>,
    /// When the link was made (whole seconds).
    pub issued: DateTime<Utc>,
    /// The link confirms nothing after this.
    pub expires: DateTime<Utc>,
}

/// Why a link is refused: nothing is recorded for any of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Cut short, mangled, or missing a value (400).
    Malformed(&'static str),
    /// Well-formed, but not signed by any secret: changed by hand, forged,
    /// or signed with a secret retired since (403).
    Forged,
    /// Signed, but past its expiry (410).
    Expired,
}

fn mac(secret: &[u8], r: &Request) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(b"signup-v1\n");
    mac.update(r.email.to_ascii_lowercase().as_bytes());
    mac.update(b"\n");
    mac.update(r.newsletters.join(",").as_bytes());
    mac.update(b"\n");
    mac.update(r.issued.timestamp().to_string().as_bytes());
    mac.update(b"\n");
    mac.update(r.expires.timestamp().to_string().as_bytes());
    mac
}

impl Request {
    /// The link's query, signed with `secret`.
    pub fn query(&self, secret: &[u8]) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("e", &self.email)
            .append_pair("n", &self.newsletters.join(","));
        q.append_pair("i", &self.issued.timestamp().to_string())
            .append_pair("x", &self.expires.timestamp().to_string())
            .append_pair(
                "t",
                &URL_SAFE_NO_PAD.encode(&mac(secret, self).finalize().into_bytes()[..TOKEN_BYTES]),
            );
        q.finish()
    }
}

/// Reads a link's query strictly, then checks its token against every
/// secret (each in constant time, all of them every time), then its expiry
/// against `now`.
pub fn verify(query: &str, secrets: &[Vec<u8>], now: DateTime<Utc>) -> Result<Request, Refusal> {
    if query.len() > MAX_QUERY {
        return Err(Refusal::Malformed("the link is too long"));
    }
    let [e, n, i, x, t] =
        read_query(query, ["e", "n", "i", "x", "t"]).map_err(Refusal::Malformed)?;
    let email = e.ok_or(Refusal::Malformed("the link names no address"))?;
    let ids = n.ok_or(Refusal::Malformed("the link names no newsletter"))?;
    let i = i.ok_or(Refusal::Malformed("the link has no issue time"))?;
    let x = x.ok_or(Refusal::Malformed("the link has no expiry"))?;
    let t = t.ok_or(Refusal::Malformed("the link has no token"))?;
    if normalize_email(&email).as_deref() != Ok(email.as_str()) {
        return Err(Refusal::Malformed("the link's address is not an address"));
    }
    let newsletters: Vec<String> = ids.split(',').map(str::to_owned).collect();
    if newsletters.len() > MAX_NEWSLETTERS || !newsletters.iter().all(|id| valid_id(id)) {
        return Err(Refusal::Malformed("the link's newsletters are not ids"));
    }
    let time = |v: &str| {
        (v.parse::<i64>().ok())
            .filter(|_| v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| DateTime::from_timestamp(s, 0))
    };
    let issued = time(&i).ok_or(Refusal::Malformed("the link's issue time is not a time"))?;
    let expires = time(&x).ok_or(Refusal::Malformed("the link's expiry is not a time"))?;
    let tag = URL_SAFE_NO_PAD
        .decode(&t)
        .ok()
        .filter(|tag| tag.len() == TOKEN_BYTES)
        .ok_or(Refusal::Malformed(
            "the link's token is cut short or damaged",
        ))?;
    let r = Request {
        email,
        newsletters,
        issued,
        expires,
    };
    let ok = secrets.iter().fold(false, |ok, secret| {
        mac(secret, &r).verify_truncated_left(&tag).is_ok() | ok
    });
    if !ok {
        return Err(Refusal::Forged);
    }
    if now > r.expires {
        return Err(Refusal::Expired);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;
    use proptest::prelude::*;

    fn request() -> Request {
        Request {
            email: "Ana@example.com".into(),
            newsletters: vec!["am".into(), "markets".into()],
            issued: DateTime::from_timestamp(1_799_827_200, 0).unwrap(),
            expires: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
        }
    }

    fn before(r: &Request) -> DateTime<Utc> {
        r.expires - TimeDelta::hours(1)
    }

    #[test]
    fn a_link_we_signed_reads_back_with_either_secret_until_it_expires() {
        let r = request();
        let secrets = vec![b"new".to_vec(), b"old".to_vec()];
        for secret in [&b"new"[..], b"old"] {
            assert_eq!(
                verify(&r.query(secret), &secrets, before(&r)),
                Ok(r.clone())
            );
        }
        let q = r.query(b"new");
        assert_eq!(
            verify(&q, &secrets, r.expires + TimeDelta::seconds(1)),
            Err(Refusal::Expired)
        );
        assert_eq!(
            verify(&r.query(b"retired"), &secrets, before(&r)),
            Err(Refusal::Forged)
        );
    }

    #[test]
    fn every_signed_value_is_bound_to_the_token() {
        let r = request();
        let secrets = vec![b"k".to_vec()];
        let q = r.query(b"k");
        let x = r.expires.timestamp().to_string();
        let later = (r.expires.timestamp() + 86_400).to_string();
        let i = r.issued.timestamp().to_string();
        let reissued = (r.issued.timestamp() + 60).to_string();
        for forged in [
            q.replace("e=Ana%40", "e=Bob%40"),
            q.replace("n=am%2Cmarkets", "n=am%2Cpm"),
            q.replace("n=am%2Cmarkets", "n=am"),
            q.replace(&x, &later),
            q.replace(&i, &reissued),
        ] {
            assert_ne!(forged, q);
            assert_eq!(
                verify(&forged, &secrets, before(&r)),
                Err(Refusal::Forged),
                "{forged}"
            );
        }
        // The address is compared as the lists compare it.
        let upper = q.replace("e=Ana%40", "e=ANA%40");
        assert!(verify(&upper, &secrets, before(&r)).is_ok());
        for damaged in [
            q.replace("e=Ana%40example.com", "e=Ana"),
            q.replace("n=am%2Cmarkets", "n=AM%2F.."),
            q.replace(&x, "soon"),
            q.replace(&x, &format!("+{x}")),
            format!("{q}&e=x%40example.com"),
            q[..q.len() - 3].to_string(),
            String::new(),
        ] {
            assert!(
                matches!(
                    verify(&damaged, &secrets, before(&r)),
                    Err(Refusal::Malformed(_))
                ),
                "{damaged}"
            );
        }
    }

    proptest! {
        #[test]
        fn any_query_is_refused_or_read_without_panicking(q in "\\PC{0,400}") {
            let _ = verify(&q, &[b"k".to_vec()], Utc::now());
        }
    }
}
