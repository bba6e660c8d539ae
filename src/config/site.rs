//! `site:`: the newsroom's name, public address, time zone, language and
//! postal address.

use chrono_tz::Tz;
use serde::Serialize;

use super::parse_tz;
use crate::yaml::Fields;

#[derive(Debug, Clone, Serialize)]
pub struct Site {
    pub name: String,
    /// Without a trailing `/`.
    pub base_url: String,
    #[serde(serialize_with = "ser_tz")]
    pub timezone: Tz,
    pub language: String,
    /// Shown in every digest's footer; templates see it as text (empty when
    /// there is none).
    #[serde(serialize_with = "ser_postal")]
    pub postal_address: PostalAddress,
}

/// The sender's postal address, which the US CAN-SPAM Act requires in
/// commercial mail.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PostalAddress {
    /// Not configured: `check` warns and sending over SMTP refuses.
    #[default]
    Missing,
    /// `postal_address: none`: the newsroom says it needs none.
    NotRequired,
    /// On one line, the lines of a multi-line value joined with ", ".
    Given(String),
}

impl PostalAddress {
    pub fn as_str(&self) -> &str {
        match self {
            PostalAddress::Given(a) => a,
            _ => "",
        }
    }
}

fn ser_postal<S: serde::Serializer>(a: &PostalAddress, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(a.as_str())
}

fn ser_tz<S: serde::Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tz.name())
}

/// Reads `site:`. A broken section still gives a `Site` (UTC, empty names)
/// so the rest of the file is checked too; its errors stop the load.
pub(super) fn read(f: &mut Fields) -> Site {
    let mut site = Site {
        name: String::new(),
        base_url: String::new(),
        timezone: Tz::UTC,
        language: "en".into(),
        postal_address: PostalAddress::Missing,
    };
    let Some(mut s) = f.fields("site", true) else {
        return site;
    };
    site.name = s
        .required_text("name", "the newsroom's name")
        .unwrap_or_default()
        .to_string();
    if let Some(url) = s.required_text("base_url", "an absolute URL like https://news.example.com")
    {
        site.base_url = url.trim_end_matches('/').to_string();
        let absolute =
            site.base_url.starts_with("https://") || site.base_url.starts_with("http://");
        if !absolute || site.base_url.contains(char::is_whitespace) {
            s.error(
                "base_url",
                format!("`{url}` is not an absolute http(s) URL"),
            );
        }
    }
    if let Some(name) = s.required_text("timezone", "an IANA zone name like America/New_York") {
        match parse_tz(name) {
            Ok(tz) => site.timezone = tz,
            Err(m) => {
                s.error("timezone", m);
            }
        }
    }
    if let Some(l) = s.text("language", "a language tag like en") {
        site.language = l.to_string();
    }
    site.postal_address = postal_address(&mut s);
    f.absorb(s);
    site
}

/// `postal_address`: an address (lines joined), `none`, or a warning.
fn postal_address(s: &mut Fields) -> PostalAddress {
    let expected =
        "the sender's postal address, like \"100 Example Street, Springfield, ST 00000\"";
    let Some(text) = s.text("postal_address", expected) else {
        let wrong_type = (s.node().entry("postal_address")).is_some_and(|(_, v)| !v.is_null());
        if wrong_type {
            // Reported as such by `text`.
            return PostalAddress::Missing;
        }
        let d = s.missing(
            "`site.postal_address` is not set: commercial email must show the sender's postal address (the US CAN-SPAM Act), and `send` over SMTP refuses to start without it",
        );
        d.severity = crate::diag::Severity::Warning;
        d.help = Some(
            "add `postal_address: \"100 Example Street, Springfield, ST 00000\"` under `site:`, or `postal_address: none` if your newsletters need none".into(),
        );
        return PostalAddress::Missing;
    };
    if text.trim().eq_ignore_ascii_case("none") {
        return PostalAddress::NotRequired;
    }
    let one_line = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(", ");
    if one_line.is_empty() {
        s.error(
            "postal_address",
            format!("`postal_address` is empty; expected {expected}, or none"),
        );
        return PostalAddress::Missing;
    }
    if let Some(c) = one_line.chars().find(|c| c.is_control()) {
        s.error(
            "postal_address",
            format!("`postal_address` contains the control character {c:?}"),
        );
    }
    PostalAddress::Given(one_line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Newsroom;

    fn site(lines: &str) -> Result<Newsroom, Vec<String>> {
        let text = format!(
            "site:\n  name: T\n  base_url: https://news.example.com\n  timezone: UTC\n{lines}regions: [{{ id: w, name: W }}]\ntopics: [{{ id: t, name: T }}]\nnewsletters:\n  am: {{ name: AM, from: a@news.example.com }}\n"
        );
        Newsroom::from_text(std::path::Path::new("config.yaml"), text)
            .map_err(|ds| ds.iter().map(|d| d.headline()).collect())
    }

    #[test]
    fn a_missing_postal_address_is_a_warning_at_site() {
        let n = site("").unwrap();
        assert_eq!(n.config.site.postal_address, PostalAddress::Missing);
        let w: Vec<String> = n.warnings.iter().map(|d| d.headline()).collect();
        assert_eq!(
            w,
            [
                "config.yaml:1:1: warning: `site.postal_address` is not set: commercial email must show the sender's postal address (the US CAN-SPAM Act), and `send` over SMTP refuses to start without it"
            ]
        );
        assert!(
            n.warnings[0]
                .help
                .as_deref()
                .unwrap()
                .contains("postal_address: none")
        );
    }

    #[test]
    fn a_postal_address_is_one_line_and_none_opts_out() {
        let n = site("  postal_address: |\n    The Daily Brief\n    1200 Harbor View Road\n\n    Port Ellison, ST 00000\n").unwrap();
        assert_eq!(
            n.config.site.postal_address.as_str(),
            "The Daily Brief, 1200 Harbor View Road, Port Ellison, ST 00000"
        );
        assert!(n.warnings.is_empty());
        let n = site("  postal_address: none\n").unwrap();
        assert_eq!(n.config.site.postal_address, PostalAddress::NotRequired);
        assert_eq!(n.config.site.postal_address.as_str(), "");
        assert!(n.warnings.is_empty());
        assert_eq!(
            site("  postal_address: [a, b]\n").unwrap_err(),
            [
                "config.yaml:5:19: error: `postal_address` must be the sender's postal address, like \"100 Example Street, Springfield, ST 00000\"; found a list"
            ]
        );
    }
}
