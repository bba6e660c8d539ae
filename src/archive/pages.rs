//! The archive's own pages: the list of newsletters at its root and each
//! newsletter's index of editions, newest first, paged. Every link is
//! relative, so the pages work wherever the folder is served (at the
//! archive URL, or behind `briefing serve`). Everything from config and
//! the ledger is escaped.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::layout::Page;
use crate::config::{Newsletter, Site};
use crate::render::escape_html;

/// One sent edition as the indexes list it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub page: Page,
    pub subject: String,
    pub slot: DateTime<Utc>,
    pub zone: Tz,
}

impl Listed {
    fn local(&self) -> DateTime<Tz> {
        self.slot.with_timezone(&self.zone)
    }
}

/// A newsletter in the archive, for the site's index.
pub struct Shelf<'a> {
    pub newsletter: &'a Newsletter,
    /// Newest first; never empty.
    pub editions: &'a [Listed],
}

/// The index pages of one newsletter: the newest `per_page` editions at
/// its folder, and every edition on pages numbered from the oldest, so that
/// a full page never changes again (only the newest numbered page's
/// "Newer" link does, once, when the next page appears). `editions` is
/// newest first.
pub fn index_pages(
    site: &Site,
    n: &Newsletter,
    editions: &[Listed],
    per_page: usize,
) -> Vec<(Page, String)> {
    let per_page = per_page.max(1);
    let total = editions.len();
    let front = Page::Index {
        newsletter: n.id.clone(),
        page: None,
    };
    let numbered = |p: usize| Page::Index {
        newsletter: n.id.clone(),
        page: Some(p),
    };
    // The numbered page holding the newest edition the front page leaves
    // out: the last one needed, each before it full.
    let last = (total > per_page).then(|| (total - 1 - per_page) / per_page + 1);
    let mut out = Vec::new();
    let shown = &editions[..total.min(per_page)];
    let nav = Nav {
        newer: None,
        older: last.map(numbered),
    };
    out.push((front.clone(), index_html(site, n, &front, shown, &nav)));
    for p in 1..=last.unwrap_or(0) {
        // Page p holds the editions p*per_page back from the oldest, shown
        // newest first.
        let from_oldest = ((p - 1) * per_page)..(p * per_page).min(total);
        let shown: Vec<Listed> = from_oldest
            .rev()
            .map(|i| editions[total - 1 - i].clone())
            .collect();
        let page = numbered(p);
        let nav = Nav {
            newer: Some(match Some(p) == last {
                true => front.clone(),
                false => numbered(p + 1),
            }),
            older: (p > 1).then(|| numbered(p - 1)),
        };
        out.push((page.clone(), index_html(site, n, &page, &shown, &nav)));
    }
    out
}

struct Nav {
    newer: Option<Page>,
    older: Option<Page>,
}

/// A relative link from page `from` to page `to`: up to the folder they
/// share, then down.
fn href(from: &Page, to: &Page) -> String {
    let from = from.href();
    let to = to.href();
    // A page's href is a folder with its `/` (or the feed file): the
    // segments before the last are folders.
    let dirs = |h: &str| -> Vec<String> {
        let mut parts: Vec<String> = h.split('/').map(str::to_string).collect();
        parts.pop();
        parts
    };
    let (here, there) = (dirs(&from), dirs(&to));
    let common = here.iter().zip(&there).take_while(|(a, b)| a == b).count();
    let rest: Vec<&str> = to.split('/').skip(common).collect();
    let link = format!("{}{}", "../".repeat(here.len() - common), rest.join("/"));
    match link.is_empty() {
        true => "./".to_string(),
        false => escape_html(&link),
    }
}

fn date(l: &Listed) -> String {
    l.local().format("%A, %B %-d, %Y · %H:%M %Z").to_string()
}

fn index_html(site: &Site, n: &Newsletter, page: &Page, shown: &[Listed], nav: &Nav) -> String {
    let feed = Page::Feed {
        newsletter: n.id.clone(),
    };
    let name = escape_html(&n.name);
    let title = match page {
        Page::Index { page: Some(_), .. } => match (shown.last(), shown.first()) {
            (Some(first), Some(last)) => format!(
                "{name}: editions from {} to {}",
                first.local().format("%B %-d, %Y"),
                last.local().format("%B %-d, %Y")
            ),
            _ => name.clone(),
        },
        _ => name.clone(),
    };
    let mut body = format!(
        "<p class=\"site\"><a href=\"{}\">{}</a></p>\n<h1>{title}</h1>\n<p class=\"feed\"><a href=\"{}\">Atom feed</a> &middot; every edition as it was sent, newest first</p>\n<ol class=\"editions\">\n",
        href(page, &Page::Site),
        escape_html(&site.name),
        href(page, &feed),
    );
    for l in shown {
        body.push_str(&format!(
            "<li><a href=\"{}\">{}</a><time datetime=\"{}\">{}</time></li>\n",
            href(page, &l.page),
            escape_html(&l.subject),
            l.local().to_rfc3339(),
            escape_html(&date(l)),
        ));
    }
    body.push_str("</ol>\n");
    if nav.newer.is_some() || nav.older.is_some() {
        body.push_str("<nav class=\"pages\">");
        if let Some(newer) = &nav.newer {
            body.push_str(&format!(
                "<a rel=\"prev\" href=\"{}\">&larr; Newer editions</a>",
                href(page, newer)
            ));
        }
        if let Some(older) = &nav.older {
            body.push_str(&format!(
                "<a rel=\"next\" href=\"{}\">Older editions &rarr;</a>",
                href(page, older)
            ));
        }
        body.push_str("</nav>\n");
    }
    let head = format!(
        "<link rel=\"alternate\" type=\"application/atom+xml\" title=\"{name}\" href=\"{}\">\n",
        href(page, &feed)
    );
    shell(
        site,
        &format!("{title} | {}", escape_html(&site.name)),
        &head,
        &body,
    )
}

/// The archive's front page: each newsletter with its newest edition.
pub fn site_html(site: &Site, shelves: &[Shelf]) -> String {
    let page = Page::Site;
    let mut body = format!(
        "<h1>{}</h1>\n<p class=\"feed\">Newsletters, every edition as it was sent.</p>\n",
        escape_html(&site.name)
    );
    if shelves.is_empty() {
        body.push_str("<p>Nothing has been published here yet.</p>\n");
    } else {
        body.push_str("<ul class=\"newsletters\">\n");
    }
    let mut head = String::new();
    for s in shelves {
        let n = s.newsletter;
        let index = Page::Index {
            newsletter: n.id.clone(),
            page: None,
        };
        let feed = Page::Feed {
            newsletter: n.id.clone(),
        };
        head.push_str(&format!(
            "<link rel=\"alternate\" type=\"application/atom+xml\" title=\"{}\" href=\"{}\">\n",
            escape_html(&n.name),
            href(&page, &feed)
        ));
        body.push_str(&format!(
            "<li><h2><a href=\"{}\">{}</a></h2>",
            href(&page, &index),
            escape_html(&n.name)
        ));
        if let Some(newest) = s.editions.first() {
            body.push_str(&format!(
                "<p>Latest: <a href=\"{}\">{}</a><time datetime=\"{}\">{}</time></p>",
                href(&page, &newest.page),
                escape_html(&newest.subject),
                newest.local().to_rfc3339(),
                escape_html(&date(newest)),
            ));
        }
        let count = crate::messages::plural(s.editions.len(), "edition");
        body.push_str(&format!(
            "<p class=\"feed\">{count} &middot; <a href=\"{}\">Atom feed</a></p></li>\n",
            href(&page, &feed)
        ));
    }
    if !shelves.is_empty() {
        body.push_str("</ul>\n");
    }
    shell(site, &escape_html(&site.name), &head, &body)
}

/// `title` and `head` are HTML already.
fn shell(site: &Site, title: &str, head: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"{lang}\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<meta name=\"color-scheme\" content=\"light dark\">\n<title>{title}</title>\n{head}<style>\n{STYLE}</style>\n</head>\n<body>\n<main>\n{body}</main>\n</body>\n</html>\n",
        lang = escape_html(&site.language),
    )
}

const STYLE: &str = r#"body { margin: 0; background: #f2f2ef; color: #1f1f1d; font: 17px/1.5 -apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, "Helvetica Neue", Helvetica, Arial, sans-serif; }
main { max-width: 600px; margin: 0 auto; padding: 24px 20px 48px; background: #fff; border-top: 6px solid #111; min-height: 60vh; }
h1 { margin: 8px 0 4px; font-size: 32px; line-height: 1.15; letter-spacing: -0.02em; color: #111; }
h2 { margin: 0; font-size: 20px; }
a { color: #0b57b7; }
.site { margin: 0; font-size: 12px; font-weight: 700; letter-spacing: 0.12em; text-transform: uppercase; }
.site a { color: #6b6b66; text-decoration: none; }
.feed { margin: 0 0 20px; font-size: 14px; color: #6b6b66; }
ol.editions, ul.newsletters { list-style: none; margin: 0; padding: 0; }
ol.editions li, ul.newsletters li { padding: 14px 0; border-top: 1px solid #e4e4df; }
ol.editions a { display: block; font-size: 19px; font-weight: 700; color: #111; text-decoration: none; }
ol.editions a:hover { text-decoration: underline; }
time { display: block; font-size: 13px; color: #6b6b66; }
ul.newsletters p { margin: 4px 0 0; }
nav.pages { display: flex; justify-content: space-between; margin-top: 24px; font-size: 15px; font-weight: 700; }
nav.pages a[rel="next"] { margin-left: auto; }
@media (prefers-color-scheme: dark) {
  body { background: #111; color: #dcdcd6; }
  main { background: #1b1b1a; border-top-color: #f2f2ef; }
  h1, ol.editions a { color: #f2f2ef; }
  a { color: #7cb4ff; }
  .feed, time, .site a { color: #a3a39c; }
  ol.editions li, ul.newsletters li { border-top-color: #3a3a37; }
}
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn site() -> Site {
        Site {
            name: "The <Daily> Brief".into(),
            base_url: "https://news.example.com".into(),
            timezone: Tz::UTC,
            language: "en".into(),
            postal_address: Default::default(),
        }
    }

    fn newsletter() -> Newsletter {
        let text = "site: { name: S, base_url: https://x.example, timezone: UTC, postal_address: none }\nregions: [{ id: a, name: A }]\ntopics: [{ id: t, name: T }]\nnewsletters:\n  am: { name: \"A & M\", from: a@x.example }\n";
        crate::config::Newsroom::from_text(std::path::Path::new("config.yaml"), text.into())
            .unwrap()
            .config
            .newsletters
            .remove(0)
    }

    /// `count` editions a day apart, newest first.
    fn editions(count: usize) -> Vec<Listed> {
        (0..count)
            .rev()
            .map(|d| {
                let slot = Utc.with_ymd_and_hms(2026, 1, 1, 11, 0, 0).unwrap()
                    + chrono::Duration::days(d as i64);
                Listed {
                    page: Page::Edition {
                        newsletter: "am".into(),
                        stamp: super::super::layout::stamp(slot, Tz::UTC),
                    },
                    subject: format!("Edition {d} <b>"),
                    slot,
                    zone: Tz::UTC,
                }
            })
            .collect()
    }

    /// The editions a page links to, by their folder.
    fn links(html: &str) -> Vec<&str> {
        html.split("href=\"")
            .skip(1)
            .filter_map(|s| s.split('"').next())
            .filter(|l| l.contains("2026-"))
            .filter_map(|l| l.trim_end_matches('/').rsplit('/').next())
            .collect()
    }

    #[test]
    fn every_edition_is_on_a_page_and_full_pages_are_stable() {
        let n = newsletter();
        for total in [1, 3, 4, 7, 9, 12] {
            let eds = editions(total);
            let pages = index_pages(&site(), &n, &eds, 3);
            let mut seen: Vec<&str> = pages.iter().flat_map(|(_, h)| links(h)).collect();
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), total, "{total} editions: {seen:?}");
            // The front page holds the newest three.
            assert!(
                eds[0].page.href().contains(links(&pages[0].1)[0]),
                "{total}"
            );
            assert_eq!(links(&pages[0].1).len(), total.min(3));
            // A numbered page never changes when more editions come.
            let more = index_pages(&site(), &n, &editions(total + 5), 3);
            for (page, html) in pages.iter().skip(1) {
                let later = &more.iter().find(|(p, _)| p == page).unwrap().1;
                assert_eq!(links(html), links(later), "{page:?}");
            }
        }
        assert_eq!(index_pages(&site(), &n, &editions(3), 3).len(), 1);
        assert_eq!(index_pages(&site(), &n, &editions(4), 3).len(), 2);
    }

    #[test]
    fn pages_escape_what_they_show_and_link_relatively() {
        let n = newsletter();
        let pages = index_pages(&site(), &n, &editions(5), 2);
        assert_eq!(pages.len(), 3);
        let (front, oldest, older) = (&pages[0].1, &pages[1].1, &pages[2].1);
        assert!(front.contains("<h1>A &amp; M</h1>"), "{front}");
        assert!(front.contains("The &lt;Daily&gt; Brief"), "{front}");
        assert!(front.contains(">Edition 4 &lt;b&gt;</a>"), "{front}");
        assert!(!front.contains("<b>"), "{front}");
        assert!(front.contains("href=\"2026-01-05-1100/\""), "{front}");
        assert!(front.contains("href=\"feed.xml\""), "{front}");
        assert!(front.contains("href=\"../\">The &lt;Daily"), "{front}");
        assert!(front.contains("href=\"page/2/\">Older"), "{front}");
        assert!(
            oldest.contains("href=\"../../2026-01-01-1100/\""),
            "{oldest}"
        );
        assert!(oldest.contains("href=\"../../../\">The"), "{oldest}");
        assert!(oldest.contains("href=\"../2/\">&larr; Newer"), "{oldest}");
        assert!(!oldest.contains("Older"), "{oldest}");
        assert!(older.contains("href=\"../../\">&larr; Newer"), "{older}");
        assert!(older.contains("href=\"../1/\">Older"), "{older}");
        let site_page = site_html(
            &site(),
            &[Shelf {
                newsletter: &n,
                editions: &editions(2),
            }],
        );
        assert!(site_page.contains("href=\"am/\""), "{site_page}");
        assert!(
            site_page.contains("href=\"am/2026-01-02-1100/\""),
            "{site_page}"
        );
        assert!(site_page.contains("2 editions"), "{site_page}");
    }
}
