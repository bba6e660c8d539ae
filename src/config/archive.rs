//! `archive:`: where the public web archive of sent editions lives (its
//! URL, which every "View in browser" link and feed points into) and where
//! `briefing archive` writes it.

use std::path::{Path, PathBuf};

use super::path;
use crate::yaml::Fields;

/// Default for `archive.editions`.
pub const DEFAULT_EDITIONS: u64 = 50;
/// More than this on one index page or in one feed makes pages and feeds
/// of many megabytes (each entry carries a whole edition).
const MAX_EDITIONS: u64 = 1000;

/// The web archive, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    /// `https://news.example.com/newsletters`, without a trailing `/`.
    pub url: String,
    /// Where `briefing archive` writes the site, resolved against the
    /// newsroom root.
    pub out: PathBuf,
    /// Editions per index page, and in each feed (the newest).
    pub editions: usize,
    /// `send --due` (and `run`) rebuild the archive after sending.
    pub on_send: bool,
}

impl Archive {
    /// The URL's host, without port: what the feeds' `tag:` ids are minted
    /// under.
    pub fn host(&self) -> &str {
        let rest = self.url.strip_prefix("https://").unwrap_or(&self.url);
        let authority = rest.split('/').next().unwrap_or(rest);
        match authority.strip_prefix('[') {
            // An IPv6 literal: `[::1]:8443`.
            Some(v6) => v6.split(']').next().unwrap_or(v6),
            None => authority.split(':').next().unwrap_or(authority),
        }
    }

    /// The URL's path, `/newsletters` (empty for an archive at the root):
    /// where a server mounts the archive folder.
    pub fn path(&self) -> &str {
        let rest = self.url.strip_prefix("https://").unwrap_or(&self.url);
        rest.find('/').map_or("", |i| &rest[i..])
    }
}

/// Reads `archive:`; `None` when absent (no archive, no "View in browser").
pub(super) fn read(f: &mut Fields, root: &Path) -> Option<Archive> {
    let mut a = f.fields("archive", false)?;
    let url = a
        .required_text(
            "url",
            "an https:// URL like https://news.example.com/newsletters",
        )
        .and_then(|u| match url_problem(u) {
            None => Some(u.trim_end_matches('/').to_string()),
            Some(why) => {
                a.error("url", format!("the archive URL `{u}` {why}"));
                None
            }
        });
    let out = path(&mut a, "out", root).unwrap_or_else(|| root.join("out/archive"));
    let editions = a
        .count("editions", 1, MAX_EDITIONS)
        .unwrap_or(DEFAULT_EDITIONS) as usize;
    let on_send = a.bool("on_send").unwrap_or(false);
    let ok = a.diags.is_empty();
    f.absorb(a);
    Some(Archive {
        url: url?,
        out,
        editions,
        on_send,
    })
    .filter(|_| ok)
}

/// Why `url` cannot be the archive's: every edition's link is made by
/// appending `/<newsletter>/<slot>/` to it, in mail and in feeds.
fn url_problem(url: &str) -> Option<&'static str> {
    let Some(rest) = url.strip_prefix("https://") else {
        return Some("must be https:// (the links go out in every email)");
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    if url.contains(['?', '#']) {
        Some("must not carry a query (`?`) or fragment (`#`): edition paths are appended to it")
    } else if authority.is_empty() {
        Some("has no host")
    } else if authority.contains('@') {
        Some("must not carry a user name or password")
    } else if url
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '<' | '>' | '\\'))
    {
        Some("must not contain spaces, quotes, angle brackets or backslashes")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Newsroom;

    fn archive(lines: &str, newsletter: &str) -> Result<Newsroom, Vec<String>> {
        let text = format!(
            "site: {{ name: T, base_url: https://news.example.com, timezone: UTC, postal_address: none }}\nregions: [{{ id: w, name: W }}]\ntopics: [{{ id: t, name: T }}]\nnewsletters:\n  am:\n    name: AM\n    from: a@news.example.com\n{newsletter}{lines}"
        );
        Newsroom::from_text(Path::new("config.yaml"), text)
            .map_err(|ds| ds.iter().map(|d| d.headline()).collect())
    }

    #[test]
    fn an_archive_has_defaults_and_newsletters_are_archived_unless_told() {
        let n = archive("", "").unwrap();
        assert_eq!(n.config.archive, None);
        assert!(n.config.newsletters[0].archive);
        let n = archive(
            "archive:\n  url: https://news.example.com/newsletters/\n",
            "    archive: false\n",
        )
        .unwrap();
        let a = n.config.archive.unwrap();
        assert_eq!(a.url, "https://news.example.com/newsletters");
        assert_eq!(a.out, Path::new("./out/archive"));
        assert_eq!((a.editions, a.on_send), (50, false));
        assert_eq!((a.host(), a.path()), ("news.example.com", "/newsletters"));
        assert!(!n.config.newsletters[0].archive);
    }

    #[test]
    fn host_and_path_of_odd_urls() {
        let a = |url: &str| Archive {
            url: url.into(),
            out: PathBuf::new(),
            editions: 1,
            on_send: false,
        };
        assert_eq!(a("https://news.example.com").path(), "");
        assert_eq!(
            a("https://news.example.com:8443/a/b").host(),
            "news.example.com"
        );
        assert_eq!(a("https://news.example.com:8443/a/b").path(), "/a/b");
        assert_eq!(a("https://[::1]:8443/x").host(), "::1");
    }

    #[test]
    fn bad_archive_settings_are_reported_at_their_place() {
        let e = archive(
            "archive:\n  url: http://news.example.com/n\n  out: ../www\n  editions: 0\n  on_sent: true\n",
            "",
        )
        .unwrap_err();
        assert_eq!(
            e,
            [
                "config.yaml:9:8: error: the archive URL `http://news.example.com/n` must be https:// (the links go out in every email)",
                "config.yaml:10:8: error: `../www` must be a relative path inside the newsroom folder (no `..`, not absolute)",
                "config.yaml:11:13: error: `editions` must be from 1 to 1000; found 0",
                "config.yaml:12:3: error: unknown key `on_sent`",
            ]
        );
        for (url, why) in [
            ("https://news.example.com/n?x=1", "must not carry a query"),
            ("https://user@news.example.com/n", "user name"),
            ("https:///n", "has no host"),
            ("\"https://news.example.com/a b\"", "spaces"),
        ] {
            let e = archive(&format!("archive:\n  url: {url}\n"), "").unwrap_err();
            assert!(e[0].contains(why), "{url}: {e:?}");
        }
        let e = archive("archive:\n  out: www\n", "").unwrap_err();
        assert_eq!(
            e,
            [
                "config.yaml:8:1: error: missing `url`: expected an https:// URL like https://news.example.com/newsletters"
            ]
        );
    }
}
