//! `signup:`: the sign-up page `briefing serve` answers (its URL, every
//! confirmation link's base), who confirmation messages come from, and how
//! long a confirmation link stays good. Every key is optional.

use chrono::Duration;

use super::check_header_value;
use super::duration;
use super::site::Site;
use crate::yaml::{Fields, Node};

/// Default for `signup.expires`.
pub const DEFAULT_EXPIRES_HOURS: i64 = 48;

/// The sign-up page, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signup {
    /// `https://news.example.com/subscribe`: the page, and the base of its
    /// confirmation links (`<url>/confirm`).
    pub url: String,
    /// The sender of confirmation messages; `None`: the `from` of the
    /// first newsletter signed up for.
    pub from: Option<String>,
    /// How long a confirmation link confirms.
    pub expires: Duration,
}

impl Signup {
    /// Where a confirmation link points.
    pub fn confirm_url(&self) -> String {
        format!("{}/confirm", self.url)
    }
}

pub(super) fn read(f: &mut Fields, site: &Site) -> Signup {
    let mut s = f
        .fields("signup", false)
        .unwrap_or_else(|| Fields::new(f.source(), Node::empty(), None, "signup"));
    let default = format!("{}/subscribe", site.base_url.trim_end_matches('/'));
    let url = match s.text(
        "url",
        "an https:// URL like https://news.example.com/subscribe",
    ) {
        None => default,
        Some(u) => {
            let u = u.trim_end_matches('/');
            if let Some(why) = url_problem(u) {
                s.error("url", format!("the sign-up URL `{u}` {why}"));
            }
            u.to_string()
        }
    };
    let from = s
        .text(
            "from",
            "an address like \"The Daily Brief <news@example.com>\"",
        )
        .map(str::to_string);
    if let Some(v) = &from {
        if let Err(m) = check_header_value(v) {
            s.error("from", format!("`from` {m}"));
        } else if !v.contains('@') {
            s.error(
                "from",
                format!("`from` must be an address like \"Name <news@example.com>\", found `{v}`"),
            );
        }
    }
    let expires = duration(&mut s, "expires", Duration::minutes(10), Duration::days(30))
        .unwrap_or(Duration::hours(DEFAULT_EXPIRES_HOURS));
    f.absorb(s);
    Signup { url, from, expires }
}

/// Why `url` cannot be the sign-up page's (what `serve` routes and what
/// confirmation messages link to).
fn url_problem(url: &str) -> Option<&'static str> {
    let Some(rest) = url.strip_prefix("https://") else {
        return Some("must be https:// (confirmation links are sent to readers)");
    };
    if rest.is_empty()
        || rest.chars().any(|c| {
            c.is_control() || c.is_whitespace() || matches!(c, '?' | '#' | '<' | '>' | '"')
        })
    {
        return Some("must be an https:// URL without a query, fragment, spaces or quotes");
    }
    None
}
