//! `briefing serve`'s pages in headless Chromium, as a reader meets them:
//! the unsubscribe link opened from a message `send` wrote, its one button,
//! the undo, and a change of sections on the preferences page that the
//! next edition honours. The pages carry no script and their policy allows
//! none, so everything here works without JavaScript.

use std::path::Path;

use briefing::ledger::{Ledger, ReturnKind, SuppressionReason};
use fantoccini::Locator;
use mail_parser::MessageParser;

use super::newsroom::Newsroom;
use super::server::Server;
use super::{click, eventually, text_of, wait_for_state, with_browser};

const SECRET: (&str, &str) = ("BRIEFING_UNSUBSCRIBE_SECRET", "browser-test-secret-42");
/// The first edition, and the one after it.
const FIRST: [&str; 3] = ["2026-11-30T08:00", "2026-11-30T06:05", "2026-11-30T0600"];
const NEXT: [&str; 3] = ["2026-12-01T08:00", "2026-12-01T06:05", "2026-12-01T0600"];
/// Readers of the sample morning brief without preferences in the list.
const READER: &str = "mateo.nakamura0@example.com";
const OTHER: &str = "lena.sato3@example.com";
/// One with `regions: world` in the list.
const WORLD_READER: &str = "ines.quintero1@example.org";

/// An item in the World section of the second edition, which otherwise
/// has only national markets news.
const WORLD_ITEM: &str = "---\ntitle: Geneva talks reach a six-month tariff truce\ndate: 2026-11-30T20:00:00-05:00\nregion: world\ntopic: trade\nsummary: Negotiators agreed to freeze new tariffs while sector talks go on.\n---\nDelegates from 30 economies agreed late Monday to freeze new tariffs for six months.\n";

/// The sample newsroom with the morning brief sent once, and `serve` on it.
fn sent() -> (Newsroom, Server) {
    let room = Newsroom::fixture(".")
        .edit("config.yaml", "min_items: 3", "min_items: 1")
        .write("content/world/geneva-truce.md", WORLD_ITEM);
    send(&room, FIRST);
    let server = Server::start(room.path(), &["serve"], &[SECRET]);
    (room, server)
}

fn send(room: &Newsroom, [at, now, _]: [&str; 3]) {
    room.run_env(&["send", "-n", "am", "--at", at, "--now", now], &[SECRET])
        .success();
}

/// The raw message `to` got in an edition, if any.
fn message(room: &Newsroom, [_, _, slot]: [&str; 3], to: &str) -> Option<Vec<u8>> {
    let dir = room.path().join("out/outbox/am").join(slot);
    std::fs::read_dir(dir).ok()?.find_map(|e| {
        let raw = std::fs::read(e.ok()?.path()).ok()?;
        let msg = MessageParser::default().parse(&raw)?;
        let addr = msg.to()?.first()?.address()?.to_owned();
        (addr == to).then_some(raw)
    })
}

/// The path and query of the one-click link in `to`'s first message.
fn link(room: &Newsroom, to: &str) -> String {
    let raw = message(room, FIRST, to).unwrap_or_else(|| panic!("{to} got no message"));
    let msg = MessageParser::default().parse(&raw).unwrap();
    let header = msg.header_raw("List-Unsubscribe").unwrap();
    let start = header.find("<https://news.example.com").unwrap() + 1;
    let url = &header[start..start + header[start..].find('>').unwrap()];
    url.strip_prefix("https://news.example.com")
        .unwrap()
        .to_owned()
}

fn ledger(dir: &Path) -> Ledger {
    Ledger::open(&dir.join(".briefing/ledger.sqlite")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_confirm_button_unsubscribes_and_undo_subscribes_again() {
    let (room, server) = sent();
    let url = format!("{}{}", server.url, link(&room, READER));
    let dir = room.path().to_owned();
    with_browser(move |c| async move {
        c.goto(&url).await.unwrap();
        wait_for_state(&c, "confirm").await;
        let h1 = text_of(&c, "h1").await.unwrap();
        assert_eq!(h1, "Unsubscribe from Morning Brief?");
        assert_eq!(
            text_of(&c, ".site").await.unwrap().to_lowercase(),
            "the daily brief"
        );
        assert_eq!(
            c.title().await.unwrap(),
            "Unsubscribe from Morning Brief · The Daily Brief"
        );
        // Opening the page did nothing.
        assert!(!ledger(&dir).is_suppressed(READER, "am").unwrap());

        click(&c, "main form button").await;
        wait_for_state(&c, "unsubscribed").await;
        let status = text_of(&c, "[role=status]").await.unwrap();
        assert!(
            status.contains("will get no more Morning Brief from The Daily Brief"),
            "{status}"
        );
        let l = ledger(&dir);
        let mine = l.suppressions_of(READER).unwrap();
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].reason, SuppressionReason::Link);
        assert!(
            mine[0].evidence["user_agent"]
                .as_str()
                .unwrap_or_default()
                .contains("Chrome"),
            "{:?}",
            mine[0].evidence
        );

        click(&c, "button.secondary").await;
        wait_for_state(&c, "subscribed").await;
        assert!(!l.is_suppressed(READER, "am").unwrap());
        let kinds: Vec<_> = l
            .events_about(READER)
            .unwrap()
            .iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, [ReturnKind::Unsubscribe, ReturnKind::Resubscribe]);
        // The link is the only credential: nothing was ever stored in the browser.
        assert!(c.get_all_cookies().await.unwrap().is_empty());
    })
    .await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_of_sections_on_the_preferences_page_is_what_the_next_edition_sends() {
    let (room, server) = sent();
    let page = |to: &str| {
        format!(
            "{}{}",
            server.url,
            link(&room, to).replacen("/unsubscribe?", "/preferences?", 1)
        )
    };
    let (mine, theirs) = (page(READER), page(WORLD_READER));
    let dir = room.path().to_owned();
    with_browser(move |c| async move {
        // The list's columns are what the page starts from.
        c.goto(&theirs).await.unwrap();
        wait_for_state(&c, "preferences").await;
        let ticked = |v: &'static str| {
            let c = c.clone();
            async move {
                c.find(Locator::Css(&format!("input[value='{v}']")))
                    .await
                    .unwrap()
                    .prop("checked")
                    .await
                    .unwrap()
            }
        };
        assert_eq!(ticked("world").await.as_deref(), Some("true"));
        assert_eq!(ticked("national").await.as_deref(), Some("false"));

        c.goto(&mine).await.unwrap();
        wait_for_state(&c, "preferences").await;
        assert_eq!(
            text_of(&c, "h1").await.unwrap(),
            "Morning Brief: your preferences"
        );
        assert_eq!(ticked("national").await.as_deref(), Some("true"));
        // Through its label, as a person clicks it.
        click(&c, "label:has(input[value='national'])").await;
        assert_eq!(ticked("national").await.as_deref(), Some("false"));
        click(&c, "form.sections button").await;
        let notice = eventually("the saved notice", || async {
            text_of(&c, ".notice")
                .await
                .filter(|t| t.starts_with("Saved."))
        })
        .await;
        assert_eq!(notice, "Saved. From the next edition you get only World.");
        assert_eq!(ticked("national").await.as_deref(), Some("false"));
        let p = ledger(&dir).preferences_of(READER, "am").unwrap().unwrap();
        assert_eq!(p.regions, ["world"]);
        assert!(p.topics.is_empty());
    })
    .await;

    send(&room, NEXT);
    let text = |to: &str| {
        let raw = message(&room, NEXT, to).unwrap_or_else(|| panic!("{to} got no message"));
        let msg = MessageParser::default().parse(&raw).unwrap();
        msg.body_text(0).unwrap().into_owned()
    };
    let mine = text(READER);
    assert!(
        mine.contains("Geneva talks reach a six-month tariff truce"),
        "{mine}"
    );
    assert!(!mine.contains("Futures edge higher"), "{mine}");
    let theirs = text(OTHER);
    assert!(
        theirs.contains("Geneva talks reach a six-month tariff truce"),
        "{theirs}"
    );
    assert!(theirs.contains("Futures edge higher"), "{theirs}");
    drop(server);
}
