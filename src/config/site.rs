//! `site:`: the newsroom's name, public address, time zone and language.

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
    f.absorb(s);
    site
}
