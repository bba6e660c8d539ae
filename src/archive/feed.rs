//! A newsletter's Atom feed (RFC 4287): its newest editions, each with its
//! whole content. Everything in it comes from the frozen editions, so a
//! rebuild with nothing new writes the same bytes: each entry's id is a
//! `tag:` URI (RFC 4151) minted from the edition's id, its `updated` is the
//! slot, and the feed's `updated` is its newest entry's.

use anyhow::{Context as _, Result};
use atom_syndication::{Content, Entry, Feed, Generator, Link, Person, Text};
use chrono::{DateTime, FixedOffset, Utc};
use chrono_tz::Tz;

use super::layout::{self, Page};
use crate::config::{Archive, Newsletter, Site};

/// One edition in the feed.
pub struct FeedEntry<'a> {
    pub id: &'a str,
    pub page: &'a Page,
    pub subject: &'a str,
    pub slot: DateTime<Utc>,
    pub zone: Tz,
    /// The edition's web page, a whole HTML document.
    pub html: &'a str,
}

/// The feed of newsletter `n`; `entries` newest first, at least one.
pub fn feed(
    site: &Site,
    archive: &Archive,
    n: &Newsletter,
    entries: &[FeedEntry],
) -> Result<Vec<u8>> {
    let index = Page::Index {
        newsletter: n.id.clone(),
        page: None,
    };
    let me = Page::Feed {
        newsletter: n.id.clone(),
    };
    let updated = entries.first().map_or_else(
        || fixed(DateTime::UNIX_EPOCH, Tz::UTC),
        |e| fixed(e.slot, e.zone),
    );
    let feed = Feed {
        title: Text::plain(xml_text(&n.name)),
        subtitle: Some(Text::plain(xml_text(&format!(
            "{}, from {}",
            n.name, site.name
        )))),
        // The newsletter's page: readers subscribe by this feed's URL,
        // which moves with it.
        id: xml_text(&layout::url(archive, &index)),
        updated,
        authors: vec![Person {
            name: xml_text(&site.name),
            uri: Some(xml_text(&site.base_url)),
            ..Person::default()
        }],
        links: vec![
            link("self", &layout::url(archive, &me), "application/atom+xml"),
            link("alternate", &layout::url(archive, &index), "text/html"),
        ],
        generator: Some(Generator {
            value: "briefing".into(),
            ..Generator::default()
        }),
        lang: Some(xml_text(&site.language)),
        entries: entries.iter().map(|e| entry(archive, e)).collect(),
        ..Feed::default()
    };
    let mut out = feed
        .write_to(Vec::new())
        .context("cannot write the Atom feed")?;
    out.push(b'\n');
    Ok(out)
}

fn entry(archive: &Archive, e: &FeedEntry) -> Entry {
    let url = layout::url(archive, e.page);
    let when = fixed(e.slot, e.zone);
    Entry {
        title: Text::plain(xml_text(e.subject)),
        id: entry_id(archive, e.id, e.slot).unwrap_or_else(|| xml_text(&url)),
        updated: when,
        published: Some(when),
        links: vec![link("alternate", &url, "text/html")],
        content: Some(Content {
            value: Some(xml_text(body(e.html))),
            content_type: Some("html".into()),
            ..Content::default()
        }),
        ..Entry::default()
    }
}

fn link(rel: &str, href: &str, mime: &str) -> Link {
    Link {
        rel: rel.into(),
        href: xml_text(href),
        mime_type: Some(mime.into()),
        ..Link::default()
    }
}

fn fixed(t: DateTime<Utc>, zone: Tz) -> DateTime<FixedOffset> {
    t.with_timezone(&zone).fixed_offset()
}

/// `tag:news.example.com,2026-11-30:am-2026-11-30T0600`: the same for an
/// edition in every build, and still the same if the archive moves to
/// another path on its host. `None` when the host cannot name a tag (an IP
/// literal with colons): the entry's URL serves.
fn entry_id(archive: &Archive, edition: &str, slot: DateTime<Utc>) -> Option<String> {
    let host = archive.host().to_ascii_lowercase();
    let dns = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    let safe = edition
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    (dns && safe).then(|| format!("tag:{host},{}:{edition}", slot.format("%Y-%m-%d")))
}

/// What a feed reader shows: the part of the page inside `<body>` (the
/// styles are inlined already), or the whole text when it has no body.
fn body(html: &str) -> &str {
    let Some(open) = html.find("<body") else {
        return html;
    };
    let Some(start) = html[open..].find('>').map(|i| open + i + 1) else {
        return html;
    };
    match html.rfind("</body>") {
        Some(end) if end >= start => &html[start..end],
        _ => &html[start..],
    }
}

/// `s` without the characters XML 1.0 cannot carry at all (C0 controls
/// but tab and newlines, U+FFFE, U+FFFF), which an item body may hold: a
/// feed with one is not XML, and readers refuse all of it.
fn xml_text(s: &str) -> String {
    s.chars()
        .filter(|&c| {
            matches!(c, '\t' | '\n' | '\r')
                || ('\u{20}'..='\u{D7FF}').contains(&c)
                || ('\u{E000}'..='\u{FFFD}').contains(&c)
                || c >= '\u{10000}'
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::path::PathBuf;

    fn archive(url: &str) -> Archive {
        Archive {
            url: url.into(),
            out: PathBuf::new(),
            editions: 50,
            on_send: false,
        }
    }

    #[test]
    fn entry_ids_are_tags_from_the_edition() {
        let slot = Utc.with_ymd_and_hms(2026, 11, 30, 11, 0, 0).unwrap();
        let a = archive("https://News.Example.com:8443/newsletters");
        assert_eq!(
            entry_id(&a, "am-2026-11-30T0600", slot).as_deref(),
            Some("tag:news.example.com,2026-11-30:am-2026-11-30T0600")
        );
        assert_eq!(entry_id(&archive("https://[::1]/n"), "am-x", slot), None);
    }

    #[test]
    fn the_content_is_the_body_and_xml_safe() {
        assert_eq!(
            body(
                "<html><head><style>x</style></head><body style=\"margin: 0\"><p>Hi</p></body></html>"
            ),
            "<p>Hi</p>"
        );
        assert_eq!(body("<p>no body</p>"), "<p>no body</p>");
        assert_eq!(body("<body"), "<body");
        assert_eq!(
            xml_text("a\u{1}b\u{c}c\td\u{FFFE}e\u{E000}"),
            "abc\tde\u{E000}"
        );
    }
}
