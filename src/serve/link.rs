//! The query every reader link carries, `?n=<newsletter>&e=<email>&t=<token>`
//! (see [`crate::mail::token`]): read it strictly, then check the token
//! against every secret. Only a link that passes both names a [`Reader`];
//! the token is the whole credential, no cookie or session is involved.

use crate::config::valid_id;
use crate::mail::token::{TOKEN_BYTES, read_query, verify_token};

/// The longest query a link of ours can have, with room for tracking
/// parameters a link rewriter appends: the address is at most 254
/// characters, three times that percent-encoded.
pub const MAX_QUERY: usize = 2048;

/// Longest address SMTP carries (RFC 5321 section 4.5.3.1.3).
const MAX_ADDRESS: usize = 254;

/// A link's three values, as read from the query, not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkQuery {
    pub newsletter: String,
    pub email: String,
    pub token: String,
}

/// Who a verified link belongs to, with the token that proved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reader {
    pub newsletter: String,
    pub email: String,
    pub token: String,
}

impl Reader {
    /// `n=…&e=…&t=…` again, for the pages' forms and the link between the
    /// two pages: the same token, so a link signed with the previous secret
    /// keeps working from page to page.
    pub fn query(&self) -> String {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("n", &self.newsletter)
            .append_pair("e", &self.email)
            .append_pair("t", &self.token)
            .finish()
    }
}

/// Why a link is refused. Neither kind records anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Cut short, mangled or missing a value (400): the link was not copied
    /// whole.
    Malformed(&'static str),
    /// Well-formed, but no secret signed it (403): changed by hand, forged,
    /// or signed with a secret retired since.
    Forged,
}

/// Reads `n`, `e` and `t` from a raw query string ([`read_query`]).
pub fn parse(query: &str) -> Result<LinkQuery, Refusal> {
    if query.len() > MAX_QUERY {
        return Err(Refusal::Malformed("the link is too long"));
    }
    let [n, e, t] = read_query(query, ["n", "e", "t"]).map_err(Refusal::Malformed)?;
    let newsletter = n.ok_or(Refusal::Malformed("the link names no newsletter"))?;
    let email = e.ok_or(Refusal::Malformed("the link names no address"))?;
    let token = t.ok_or(Refusal::Malformed("the link has no token"))?;
    if !valid_id(&newsletter) {
        return Err(Refusal::Malformed("the link's newsletter is not an id"));
    }
    let plausible = email.len() <= MAX_ADDRESS
        && email.contains('@')
        && !email.chars().any(|c| c.is_control() || c.is_whitespace());
    if !plausible {
        return Err(Refusal::Malformed("the link's address is not an address"));
    }
    // base64url without padding of TOKEN_BYTES bytes: a shorter one was cut.
    let token_len = (TOKEN_BYTES * 4).div_ceil(3);
    let token_chars = token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if token.len() != token_len || !token_chars {
        return Err(Refusal::Malformed(
            "the link's token is cut short or damaged",
        ));
    }
    Ok(LinkQuery {
        newsletter,
        email,
        token,
    })
}

/// Checks the token against every secret (the current one and the one
/// before a rotation), each in constant time, and all of them every time.
pub fn verify(q: LinkQuery, secrets: &[Vec<u8>]) -> Result<Reader, Refusal> {
    let ok = secrets.iter().fold(false, |ok, secret| {
        verify_token(secret, &q.newsletter, &q.email, &q.token) | ok
    });
    match ok {
        true => Ok(Reader {
            newsletter: q.newsletter,
            email: q.email,
            token: q.token,
        }),
        false => Err(Refusal::Forged),
    }
}

/// [`parse`] then [`verify`].
pub fn reader(query: &str, secrets: &[Vec<u8>]) -> Result<Reader, Refusal> {
    verify(parse(query)?, secrets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::token::unsubscribe_url;
    use proptest::prelude::*;

    fn query_of(url: &str) -> &str {
        url.split_once('?').unwrap().1
    }

    #[test]
    fn a_link_we_made_names_its_reader_with_either_secret() {
        let secrets = vec![b"new".to_vec(), b"old".to_vec()];
        for secret in [&b"new"[..], b"old"] {
            let url =
                unsubscribe_url("https://x.example/u", "am", "a+b@example.com", secret).unwrap();
            let r = reader(query_of(&url), &secrets).unwrap();
            assert_eq!(
                (r.newsletter.as_str(), r.email.as_str()),
                ("am", "a+b@example.com")
            );
            // The pages link onwards with the same, still valid, query.
            assert_eq!(reader(&r.query(), &secrets), Ok(r.clone()));
        }
        let url =
            unsubscribe_url("https://x.example/u", "am", "a@example.com", b"retired").unwrap();
        assert_eq!(reader(query_of(&url), &secrets), Err(Refusal::Forged));
    }

    #[test]
    fn tampering_is_forged_and_damage_is_malformed() {
        let secrets = vec![b"k".to_vec()];
        let url = unsubscribe_url("https://x.example/u", "am", "ana@example.com", b"k").unwrap();
        let q = query_of(&url);
        let token = q.rsplit_once("t=").unwrap().1;
        let first = if token.starts_with('A') { "B" } else { "A" };
        let forged = [
            q.replace("n=am", "n=pm"),
            q.replace("ana%40", "bob%40"),
            q.replace(token, &format!("{first}{}", &token[1..])),
        ];
        for f in &forged {
            assert_eq!(reader(f, &secrets), Err(Refusal::Forged), "{f}");
        }
        let damaged = [
            q.replace(token, &token[..21]),
            q.replace(token, &format!("{token}x")),
            q.replace(token, "AAAAAAAAAAAAAAAAAAAA=="),
            q.replace("n=am&", ""),
            q.replace("e=ana%40example.com&", ""),
            q.replace("e=ana%40example.com", "e=ana"),
            q.replace("e=ana", "e=an%0Aa"),
            q.replace("n=am", "n=AM%2F.."),
            format!("{q}&t={token}"),
            format!("{q}&n=am"),
            String::new(),
            format!("{q}&pad={}", "x".repeat(MAX_QUERY)),
        ];
        for d in &damaged {
            assert!(
                matches!(reader(d, &secrets), Err(Refusal::Malformed(_))),
                "{d}"
            );
        }
        // What link rewriters append is no reason to refuse.
        assert!(reader(&format!("{q}&utm_source=x"), &secrets).is_ok());
    }

    proptest! {
        #[test]
        fn any_query_is_refused_or_read_without_panicking(q in "\\PC{0,300}") {
            let _ = reader(&q, &[b"k".to_vec()]);
        }

        #[test]
        fn any_near_miss_of_a_real_link_is_refused(
            cut in 0usize..80,
            junk in "[a-zA-Z0-9%&=_.-]{0,8}",
        ) {
            let secrets = vec![b"k".to_vec()];
            let url = unsubscribe_url("https://x.example/u", "am", "ana@example.com", b"k").unwrap();
            let q = query_of(&url);
            let cut = cut.min(q.len());
            let near = format!("{}{junk}{}", &q[..cut], &q[cut..]);
            if near != q {
                // Either it still reads the same reader (junk that is an
                // ignored parameter), or it is refused: never another reader.
                if let Ok(r) = reader(&near, &secrets) {
                    prop_assert!(r.email.eq_ignore_ascii_case("ana@example.com"));
                }
            }
        }
    }
}
