//! The web archive from a ledger of really sent editions (the sample
//! newsroom sending into its outbox): the pages the emails link to exist,
//! the feeds parse as Atom with an independent parser (feed-rs), nothing
//! of any recipient appears anywhere in it, and rebuilds write only what
//! changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mail_parser::MessageParser;

use crate::support::Newsroom;

const ARCHIVE: &str = "https://news.example.com/newsletters";
const SENT_AT: &str = "2026-11-30T08:00";

/// The sample newsroom with Denver members-only, after `send --due` at
/// 08:00 sent am, markets, tampa-bay and denver into the outbox.
fn sent() -> Newsroom {
    let room = Newsroom::fixture(".").edit(
        "config.yaml",
        "    regions: [denver]\n",
        "    regions: [denver]\n    archive: false\n",
    );
    room.run(&["send", "--due", "--now", SENT_AT])
        .success()
        .stdout_has("am-2026-11-30T0600: sent 19")
        .stdout_has("markets-2026-11-30T0730: sent 19")
        .stdout_has("tampa-bay-2026-11-30T0700: sent 19")
        .stdout_has("denver-2026-11-30T0700: sent 19");
    room
}

/// Every file under `dir`, by its path relative to it.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let rel = p
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// One sent message, as a reader got it.
struct Sent {
    newsletter: String,
    to: String,
    name: String,
    subject: String,
    html: String,
    text: String,
    /// The secrets in its unsubscribe links: the URL's token and the
    /// mailto's tag.
    secrets: Vec<String>,
}

fn outbox(room: &Newsroom) -> Vec<Sent> {
    let root = room.path().join("out/outbox");
    let mut out = Vec::new();
    for (rel, raw) in files(&root) {
        if !rel.ends_with(".eml") || rel.contains("/test/") {
            continue;
        }
        let m = MessageParser::default().parse(&raw).unwrap();
        let to = m.to().and_then(|a| a.first()).unwrap();
        let header = String::from_utf8_lossy(&raw);
        let unsubscribe = header
            .split("List-Unsubscribe: ")
            .nth(1)
            .unwrap()
            .split("\r\nList-Unsubscribe-Post")
            .next()
            .unwrap()
            .to_string();
        let token = unsubscribe
            .split("&t=")
            .nth(1)
            .unwrap()
            .split('>')
            .next()
            .unwrap();
        let tag = unsubscribe
            .split("mailto:unsubscribe+")
            .nth(1)
            .unwrap()
            .split('@')
            .next()
            .unwrap();
        assert!(token.len() >= 16 && tag.len() >= 16, "{unsubscribe}");
        out.push(Sent {
            newsletter: rel.split('/').next().unwrap().to_string(),
            to: to.address().unwrap().to_string(),
            name: to.name().unwrap_or_default().to_string(),
            subject: m.subject().unwrap().to_string(),
            html: m.body_html(0).unwrap().into_owned(),
            text: m.body_text(0).unwrap().replace("\r\n", "\n"),
            secrets: vec![token.to_string(), tag.to_string()],
        });
    }
    out
}

/// The "View in browser" link of a message, from its text part, after
/// checking that its HTML part links the same page.
fn view_in_browser(m: &Sent) -> Option<String> {
    let url = m
        .text
        .split("View in browser:\n")
        .nth(1)
        .map(|rest| rest.lines().next().unwrap().to_string());
    let in_html = m
        .html
        .split(">View in browser</a>")
        .next()
        .filter(|_| m.html.contains(">View in browser</a>"))
        .and_then(|before| before.rsplit("href=\"").next())
        .map(|h| h.split('"').next().unwrap().to_string());
    assert_eq!(url, in_html, "both parts link the same page, to {}", m.to);
    url
}

fn feed(room: &Newsroom, newsletter: &str) -> feed_rs::model::Feed {
    let path = room
        .path()
        .join(format!("out/archive/{newsletter}/feed.xml"));
    let xml = std::fs::read(&path).unwrap();
    feed_rs::parser::parse(xml.as_slice())
        .unwrap_or_else(|e| panic!("{}: not a feed: {e}", path.display()))
}

#[test]
fn the_archive_holds_the_sent_editions_and_nothing_of_their_recipients() {
    let room = sent();
    room.run(&["archive"])
        .success()
        .stdout_has("am           1 edition    https://news.example.com/newsletters/am/")
        .stdout_has("denver       not archived (archive: false)")
        .stdout_has("pm           nothing sent yet")
        .stdout_has("archive out/archive: 10 files written, 0 unchanged, 0 removed");
    let archive = files(&room.path().join("out/archive"));
    let pages: Vec<&String> = archive
        .keys()
        .filter(|k| k.matches('/').count() == 2)
        .collect();
    assert_eq!(
        pages,
        [
            "am/2026-11-30-0600/index.html",
            "markets/2026-11-30-0730/index.html",
            "tampa-bay/2026-11-30-0700/index.html"
        ],
        "one page per sent edition of an archived newsletter"
    );
    assert!(
        !archive.keys().any(|k| k.starts_with("denver/")),
        "archive: false writes nothing of it: {:?}",
        archive.keys()
    );
    let site = String::from_utf8_lossy(&archive["index.html"]);
    assert!(
        site.contains("href=\"am/\"") && !site.contains("Denver"),
        "{site}"
    );

    // Every email of an archived newsletter links its edition's page, which
    // exists; a members-only one links nothing.
    let messages = outbox(&room);
    assert_eq!(messages.len(), 4 * 19);
    for m in &messages {
        let url = view_in_browser(m);
        if m.newsletter == "denver" {
            assert_eq!(url, None, "to {}", m.to);
            continue;
        }
        let url = url.unwrap_or_else(|| panic!("no View in browser to {}", m.to));
        let rel = url
            .strip_prefix(&format!("{ARCHIVE}/"))
            .unwrap_or_else(|| panic!("{url} is not in the archive"));
        let page = format!("{rel}index.html");
        let html = String::from_utf8_lossy(
            archive
                .get(&page)
                .unwrap_or_else(|| panic!("{url}: no {page} in the archive")),
        );
        assert!(
            html.contains("You are reading the web edition of"),
            "{page}"
        );
    }

    // Nothing of any recipient, nor any unsubscribe link, in any file.
    let lists = ["am", "markets", "tampa-bay", "denver", "pm", "world"];
    let mut names: Vec<String> = Vec::new();
    for list in lists {
        let csv = room.read(&format!("subscribers/{list}.csv"));
        for row in csv.lines().skip(1) {
            if let Some(name) = row.split(',').nth(1).map(|n| n.trim_matches('"')) {
                if name.len() > 3 {
                    names.push(name.to_string());
                }
            }
        }
    }
    assert!(names.len() > 50, "{names:?}");
    for (file, bytes) in &archive {
        let text = String::from_utf8_lossy(bytes);
        let lower = text.to_lowercase();
        for m in &messages {
            assert!(!lower.contains(&m.to.to_lowercase()), "{file} has {}", m.to);
            for s in &m.secrets {
                assert!(
                    !text.contains(s.as_str()),
                    "{file} has {}'s secret {s}",
                    m.to
                );
            }
            assert!(
                m.name.is_empty() || !text.contains(&m.name),
                "{file} has {}",
                m.name
            );
        }
        for name in &names {
            assert!(!text.contains(name.as_str()), "{file} has {name}");
        }
        for never in [
            "https://news.example.com/unsubscribe",
            "mailto:unsubscribe",
            "Unsubscribe",
            "This email was sent to",
            "\u{E000}",
        ] {
            assert!(!text.contains(never), "{file} has {never:?}");
        }
    }

    // The feeds are Atom, as an independent parser reads them.
    for (newsletter, slot, stamp) in [
        ("am", "2026-11-30T11:00:00+00:00", "2026-11-30-0600"),
        ("markets", "2026-11-30T12:30:00+00:00", "2026-11-30-0730"),
        ("tampa-bay", "2026-11-30T12:00:00+00:00", "2026-11-30-0700"),
    ] {
        let f = feed(&room, newsletter);
        assert_eq!(f.feed_type, feed_rs::model::FeedType::Atom);
        assert_eq!(f.id, format!("{ARCHIVE}/{newsletter}/"));
        assert!(f.title.is_some() && !f.authors.is_empty());
        let slot: chrono::DateTime<chrono::Utc> = slot.parse().unwrap();
        assert_eq!(f.updated, Some(slot), "the feed's from its newest entry");
        assert!((f.links.iter()).any(|l| l.rel.as_deref() == Some("self")
            && l.href == format!("{ARCHIVE}/{newsletter}/feed.xml")));
        assert_eq!(f.entries.len(), 1);
        let e = &f.entries[0];
        let id = format!(
            "tag:news.example.com,2026-11-30:{newsletter}-{}",
            &stamp[..10]
        ) + "T"
            + &stamp[11..];
        assert_eq!(e.id, id);
        assert_eq!((e.updated, e.published), (Some(slot), Some(slot)));
        // The whole edition's subject: what readers without preferences got
        // (a narrower edition can have another lead), and the page's title.
        let title = &e.title.as_ref().unwrap().content;
        let got = (messages.iter())
            .filter(|m| m.newsletter == newsletter && &m.subject == title)
            .count();
        assert!(got > 10, "{title}: {got}");
        let page = String::from_utf8_lossy(&archive[&format!("{newsletter}/{stamp}/index.html")]);
        assert!(page.contains(&format!("<title>{}</title>", title.replace('&', "&amp;"))));
        assert_eq!(e.links[0].href, format!("{ARCHIVE}/{newsletter}/{stamp}/"));
        let content = e.content.as_ref().and_then(|c| c.body.as_deref()).unwrap();
        assert!(
            content.contains("You are reading the web edition"),
            "{content}"
        );
        assert!(
            !content.contains("<head>") && !content.contains("<body"),
            "{content}"
        );
    }
}

#[test]
fn rebuilds_write_only_what_changed_and_on_send_refreshes_it() {
    let room = sent();
    room.run(&["archive"]).success();
    let dir = room.path().join("out/archive");
    let before = files(&dir);
    let mtimes = |dir: &Path| -> BTreeMap<PathBuf, std::time::SystemTime> {
        files(dir)
            .keys()
            .map(|k| {
                let p = dir.join(k);
                let t = std::fs::metadata(&p).unwrap().modified().unwrap();
                (p, t)
            })
            .collect()
    };
    let stamped = mtimes(&dir);
    room.run(&["archive"])
        .success()
        .stdout_has("archive out/archive: 0 files written, 10 unchanged, 0 removed");
    assert_eq!(mtimes(&dir), stamped, "nothing was rewritten");

    // The evening edition goes out; the archive follows by itself, with its
    // page, index and feed and the site's index, and nothing else.
    let room = room.edit("config.yaml", "on_send: false", "on_send: true");
    room.run(&["send", "--due", "--now", "2026-11-30T17:05"])
        .success()
        .stdout_has("pm-2026-11-30T1700: sent")
        .stdout_has("archive out/archive: 4 files written, 9 unchanged, 0 removed");
    let after = files(&dir);
    let changed: Vec<&String> = (after.keys())
        .filter(|k| !k.starts_with('.') && before.get(*k) != after.get(*k))
        .collect();
    assert_eq!(
        changed,
        [
            "index.html",
            "pm/2026-11-30-1700/index.html",
            "pm/feed.xml",
            "pm/index.html"
        ]
    );
    // A run that sends nothing leaves the archive alone.
    room.run(&["send", "--due", "--now", "2026-11-30T17:10"])
        .success()
        .stdout_lacks("archive out/archive");

    // A newsletter turned members-only disappears from the archive.
    let room = room.edit(
        "config.yaml",
        "    topics: [markets, economy, trade]\n",
        "    topics: [markets, economy, trade]\n    archive: false\n",
    );
    room.run(&["archive"])
        .success()
        .stdout_has("markets      not archived (archive: false)")
        .stdout_has("archive out/archive: 1 file written, 9 unchanged, 3 removed");
    assert!(!dir.join("markets").exists());
    assert!(!room.read("out/archive/index.html").contains("Markets"));
}

#[test]
fn an_edition_frozen_without_a_web_copy_shows_its_main_rendering_emptied() {
    let room = sent();
    // As a ledger from before web copies has it.
    let ledger = rusqlite::Connection::open(room.path().join(".briefing/ledger.sqlite")).unwrap();
    ledger
        .execute(
            "UPDATE editions SET web_subject = NULL, web_html = NULL, web_text = NULL WHERE id = 'am-2026-11-30T0600'",
            [],
        )
        .unwrap();
    drop(ledger);
    let out = room.path().join("elsewhere");
    room.run(&["archive", "--out", out.to_str().unwrap()])
        .success()
        .stderr_has("1 edition has no web copy (frozen before briefing kept one");
    let page = std::fs::read_to_string(out.join("am/2026-11-30-0600/index.html")).unwrap();
    assert!(page.contains("This email was sent to  because"), "{page}");
    for m in outbox(&room) {
        assert!(!page.contains(&m.to), "{}", m.to);
        for s in &m.secrets {
            assert!(!page.contains(s.as_str()));
        }
    }
    assert!(!page.contains('\u{E000}'));
    assert!(!room.path().join("out/archive").exists(), "--out only");
}

#[test]
fn without_an_archive_section_there_is_nothing_to_build() {
    Newsroom::fixture("basic")
        .run(&["archive"])
        .code(1)
        .stderr_has("has no `archive:` section: add one with at least `url: https://");
}

#[test]
fn a_web_copy_the_templates_cannot_render_never_holds_the_mail_back() {
    let room = Newsroom::fixture(".").edit(
        "templates/digest.html",
        "<body>",
        "<body>{% if subscriber.web %}{{ no_such_variable.at_all }}{% endif %}",
    );
    room.run(&[
        "send",
        "-n",
        "am",
        "--at",
        SENT_AT,
        "--now",
        "2026-11-30T06:05",
    ])
    .success()
    .stdout_has("am-2026-11-30T0600: sent 19")
    .stderr_has("the web copy for the archive (`subscriber.web`):");
    room.run(&["archive"])
        .success()
        .stderr_has("1 edition has no web copy");
    let page = room.read("out/archive/am/2026-11-30-0600/index.html");
    assert!(page.contains("This email was sent to  because"), "{page}");
}
