//! Where everything in the archive lives, in one place: the folders and
//! files `briefing archive` writes, the URL every "View in browser" link
//! points to, and the reverse, mapping a request path back to one of those
//! files. Only the paths named here exist; anything else maps to nothing, so
//! a server cannot be walked out of the archive folder.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::config::{Archive, Config, Newsletter, valid_id};

/// Each folder's page.
pub const INDEX: &str = "index.html";
/// A newsletter's Atom feed, in its folder.
pub const FEED: &str = "feed.xml";
/// Older index pages: `<newsletter>/page/<n>/`.
const PAGE: &str = "page";

/// `2026-11-30-0600`: an edition's folder, its slot in the zone it was
/// scheduled in (the edition id's stamp, `-` for `T`, so that it reads as
/// a path).
pub fn stamp(slot: DateTime<Utc>, zone: Tz) -> String {
    slot.with_timezone(&zone)
        .format("%Y-%m-%d-%H%M")
        .to_string()
}

/// Whether `s` has the form of [`stamp`]'s output.
fn is_stamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 15
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 | 10 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
}

/// One thing the archive writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// The list of newsletters, at the archive's root.
    Site,
    /// A newsletter's newest editions (`page: None`), or one of its older
    /// pages, numbered from the oldest so that a page, once full, never
    /// changes.
    Index {
        newsletter: String,
        page: Option<usize>,
    },
    /// One edition's page.
    Edition { newsletter: String, stamp: String },
    /// A newsletter's Atom feed.
    Feed { newsletter: String },
}

impl Page {
    /// The page's path under the archive folder and under its URL, `/`
    /// separated: `am/2026-11-30-0600/index.html`.
    pub fn file(&self) -> String {
        match self {
            Page::Feed { .. } => self.href(),
            _ => format!("{}{INDEX}", self.href()),
        }
    }

    /// How a link names the page, relative to the archive's root: a folder
    /// with its `/` (`""` for the root), or the feed file.
    pub fn href(&self) -> String {
        match self {
            Page::Site => String::new(),
            Page::Index {
                newsletter,
                page: None,
            } => format!("{newsletter}/"),
            Page::Index {
                newsletter,
                page: Some(p),
            } => format!("{newsletter}/{PAGE}/{p}/"),
            Page::Edition { newsletter, stamp } => format!("{newsletter}/{stamp}/"),
            Page::Feed { newsletter } => format!("{newsletter}/{FEED}"),
        }
    }

    /// How many folders deep the page is: a relative link from it to the
    /// root goes up this often.
    pub fn depth(&self) -> usize {
        self.href().matches('/').count()
    }

    pub fn content_type(&self) -> &'static str {
        match self {
            Page::Feed { .. } => "application/atom+xml; charset=utf-8",
            _ => "text/html; charset=utf-8",
        }
    }

    /// The page a path under the archive folder holds (`/` separated, as
    /// [`Page::file`] makes it); `None` for anything the archive never
    /// writes.
    pub fn from_file(file: &str) -> Option<Page> {
        let parts: Vec<&str> = file.split('/').collect();
        let page = match parts.as_slice() {
            [INDEX] => Page::Site,
            [n, INDEX] if valid_id(n) => Page::Index {
                newsletter: n.to_string(),
                page: None,
            },
            [n, FEED] if valid_id(n) => Page::Feed {
                newsletter: n.to_string(),
            },
            [n, s, INDEX] if valid_id(n) && is_stamp(s) => Page::Edition {
                newsletter: n.to_string(),
                stamp: s.to_string(),
            },
            [n, PAGE, p, INDEX] if valid_id(n) => Page::Index {
                newsletter: n.to_string(),
                page: Some(page_number(p)?),
            },
            _ => return None,
        };
        Some(page)
    }
}

/// `1`, `2`…: digits without a leading zero, so that each page has one name.
fn page_number(s: &str) -> Option<usize> {
    let ok = !s.is_empty() && !s.starts_with('0') && s.len() <= 9;
    ok.then(|| s.parse().ok()).flatten()
}

/// The public URL of a page.
pub fn url(archive: &Archive, page: &Page) -> String {
    format!("{}/{}", archive.url, page.href())
}

/// `edition.web_url` of newsletter `n`'s edition at `slot`: its page in the
/// archive, or empty when there is no archive or `n` is not in it.
pub fn web_url(cfg: &Config, n: &Newsletter, slot: DateTime<Utc>) -> String {
    match &cfg.archive {
        Some(a) if n.archive => url(
            a,
            &Page::Edition {
                newsletter: n.id.clone(),
                stamp: stamp(slot, n.timezone),
            },
        ),
        _ => String::new(),
    }
}

/// The archive folder's page of newsletter `n` (`newsletter.archive_url`),
/// or empty.
pub fn newsletter_url(cfg: &Config, n: &Newsletter) -> String {
    match &cfg.archive {
        Some(a) if n.archive => url(
            a,
            &Page::Index {
                newsletter: n.id.clone(),
                page: None,
            },
        ),
        _ => String::new(),
    }
}

/// What a request for a path under the archive gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// This file under the archive folder (relative; it may not exist yet:
    /// a missing one is a 404), sent with this `Content-Type`.
    File {
        path: PathBuf,
        content_type: &'static str,
    },
    /// A folder asked for without its `/`: redirect here (a path; the
    /// query, if any, is the caller's to keep), so that the page's
    /// relative links work.
    Redirect(String),
}

/// Maps a request's path (percent-encoded as it came, without the query) to
/// the archive file it names, for an archive mounted at `mount` (the
/// archive URL's path, [`Archive::path`], e.g. `/newsletters`, or empty).
/// `None` for every path the archive does not write: outside the mount,
/// `..`, encoded characters, other files. Nothing here touches the disk.
pub fn resolve(mount: &str, request: &str) -> Option<Resolved> {
    let mount = mount.trim_end_matches('/');
    let rest = request.strip_prefix(mount)?;
    let Some(rest) = rest.strip_prefix('/') else {
        return rest
            .is_empty()
            .then(|| Resolved::Redirect(format!("{mount}/")));
    };
    // A folder stands for its index page.
    let file = match rest.is_empty() || rest.ends_with('/') {
        true => format!("{rest}{INDEX}"),
        false => rest.to_string(),
    };
    if let Some(page) = Page::from_file(&file) {
        return Some(file_of(page));
    }
    // A folder asked for without its `/`.
    let page = Page::from_file(&format!("{rest}/{INDEX}"))?;
    Some(Resolved::Redirect(format!("{mount}/{}", page.href())))
}

fn file_of(page: Page) -> Resolved {
    Resolved::File {
        path: page.file().split('/').collect(),
        content_type: page.content_type(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn f(path: &str, feed: bool) -> Option<Resolved> {
        Some(Resolved::File {
            path: path.split('/').collect(),
            content_type: if feed {
                "application/atom+xml; charset=utf-8"
            } else {
                "text/html; charset=utf-8"
            },
        })
    }

    #[test]
    fn a_stamp_is_the_slot_in_its_zone() {
        let slot = Utc.with_ymd_and_hms(2026, 11, 30, 11, 0, 0).unwrap();
        assert_eq!(stamp(slot, chrono_tz::America::New_York), "2026-11-30-0600");
        assert!(is_stamp("2026-11-30-0600"));
        for bad in [
            "2026-11-30T0600",
            "2026-11-30-060",
            "2026-11-30-06000",
            "abcd-11-30-0600",
        ] {
            assert!(!is_stamp(bad), "{bad}");
        }
    }

    #[test]
    fn every_page_resolves_back_to_its_own_file() {
        for p in [
            Page::Site,
            Page::Index {
                newsletter: "am".into(),
                page: None,
            },
            Page::Index {
                newsletter: "tampa-bay".into(),
                page: Some(12),
            },
            Page::Edition {
                newsletter: "am".into(),
                stamp: "2026-11-30-0600".into(),
            },
            Page::Feed {
                newsletter: "am".into(),
            },
        ] {
            assert_eq!(Page::from_file(&p.file()), Some(p.clone()), "{p:?}");
            let request = format!("/newsletters/{}", p.href());
            assert_eq!(resolve("/newsletters", &request), Some(file_of(p.clone())));
            assert_eq!(resolve("/newsletters/", &request), Some(file_of(p.clone())));
            assert_eq!(resolve("", &format!("/{}", p.href())), Some(file_of(p)));
        }
    }

    #[test]
    fn requests_map_to_archive_files_or_redirects() {
        let r = |path: &str| resolve("/newsletters", path);
        assert_eq!(r("/newsletters/"), f("index.html", false));
        assert_eq!(r("/newsletters/index.html"), f("index.html", false));
        assert_eq!(r("/newsletters/am/"), f("am/index.html", false));
        assert_eq!(r("/newsletters/am/feed.xml"), f("am/feed.xml", true));
        assert_eq!(
            r("/newsletters/am/2026-11-30-0600/"),
            f("am/2026-11-30-0600/index.html", false)
        );
        assert_eq!(
            r("/newsletters/am/2026-11-30-0600/index.html"),
            f("am/2026-11-30-0600/index.html", false)
        );
        assert_eq!(
            r("/newsletters/am/page/3/"),
            f("am/page/3/index.html", false)
        );
        let redirect = |to: &str| Some(Resolved::Redirect(to.into()));
        assert_eq!(r("/newsletters"), redirect("/newsletters/"));
        assert_eq!(r("/newsletters/am"), redirect("/newsletters/am/"));
        assert_eq!(
            r("/newsletters/am/2026-11-30-0600"),
            redirect("/newsletters/am/2026-11-30-0600/")
        );
        assert_eq!(
            r("/newsletters/am/page/2"),
            redirect("/newsletters/am/page/2/")
        );
        assert_eq!(resolve("", ""), redirect("/"));
    }

    #[test]
    fn nothing_outside_the_layout_resolves() {
        let r = |path: &str| resolve("/newsletters", path);
        for bad in [
            "/",
            "/other/am/",
            "/newslettersx/am/",
            "/newsletters/../config.yaml",
            "/newsletters/am/../../.briefing/ledger.sqlite",
            "/newsletters/%2e%2e/",
            "/newsletters/am/%2e%2e/feed.xml",
            "/newsletters/.briefing-manifest",
            "/newsletters//etc/passwd",
            "/newsletters/am//",
            "/newsletters/AM/",
            "/newsletters/am/feed.xml/",
            "/newsletters/am/index.htm",
            "/newsletters/am/2026-11-30-0600/email.txt",
            "/newsletters/am/2026-11-30T0600/",
            "/newsletters/am/page/0/",
            "/newsletters/am/page/02/",
            "/newsletters/am/page/x/",
            "/newsletters/am/page/",
            "/newsletters/am/page/1/extra/",
            "/newsletters/feed.xml",
            "/newsletters/am/index.html/",
            "/newsletters/am\\..\\x/",
            "/newsletters/am/2026-11-30-0600/index.html.tmp",
        ] {
            assert_eq!(r(bad), None, "{bad}");
        }
        for bad in [
            "../x/index.html",
            "/index.html",
            "am/../index.html",
            "am/x.html",
            "",
        ] {
            assert_eq!(Page::from_file(bad), None, "{bad}");
        }
    }

    #[test]
    fn links_go_up_as_deep_as_the_page_is() {
        assert_eq!(Page::Site.depth(), 0);
        let edition = Page::Edition {
            newsletter: "am".into(),
            stamp: "2026-11-30-0600".into(),
        };
        assert_eq!(edition.depth(), 2);
        let older = Page::Index {
            newsletter: "am".into(),
            page: Some(2),
        };
        assert_eq!(older.depth(), 3);
    }
}
