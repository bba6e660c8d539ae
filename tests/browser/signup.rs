//! The sign-up page in headless Chromium, as a reader meets it: every
//! newsletter with its pitch, a box ticked from the link that led there,
//! the form sent, the confirmation message's link opened and its button
//! pressed.

use briefing::ledger::Ledger;
use fantoccini::Locator;
use mail_parser::MessageParser;

use super::newsroom::Newsroom;
use super::server::Server;
use super::{click, eventually, text_of, wait_for_state, with_browser};

const SECRET: (&str, &str) = ("BRIEFING_UNSUBSCRIBE_SECRET", "browser-signup-secret-7");
const READER: &str = "kai.brennan@example.net";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_signs_up_on_the_page_and_confirms_from_the_message() {
    let room = Newsroom::fixture(".");
    let server = Server::start(room.path(), &["serve"], &[SECRET]);
    let cfg = briefing::config::Newsroom::load(&room.path().join("config.yaml")).unwrap();
    let letters: Vec<(String, String, String)> = (cfg.config.newsletters.iter())
        .map(|n| (n.id.clone(), n.name.clone(), n.description.clone().unwrap()))
        .collect();
    let url = format!("{}/subscribe?newsletter=world", server.url);
    let dir = room.path().to_owned();
    with_browser(move |c| async move {
        c.goto(&url).await.unwrap();
        wait_for_state(&c, "signup").await;
        assert_eq!(c.title().await.unwrap(), "Sign up · The Daily Brief");
        let rows = c
            .find_all(Locator::Css("li[data-newsletter]"))
            .await
            .unwrap();
        assert_eq!(rows.len(), letters.len());
        for (row, (id, name, pitch)) in rows.iter().zip(&letters) {
            assert_eq!(
                row.attr("data-newsletter").await.unwrap().as_deref(),
                Some(id.as_str())
            );
            let text = row.text().await.unwrap();
            assert!(text.contains(name), "{text}");
            assert!(text.contains(pitch), "{text}");
            let checked = row
                .find(Locator::Css("input[type=checkbox]"))
                .await
                .unwrap()
                .prop("checked")
                .await
                .unwrap();
            assert_eq!(checked.as_deref() == Some("true"), id == "world", "{id}");
        }
        // The honeypot is there for bots and out of a person's sight.
        let hp = c.find(Locator::Css("input[name=website]")).await.unwrap();
        assert!(
            !hp.is_displayed().await.unwrap() || {
                let rect = hp.rectangle().await.unwrap();
                rect.0 < 0.0
            }
        );

        // An address without @: the page says so beside the field.
        c.find(Locator::Css("#email"))
            .await
            .unwrap()
            .send_keys("kai.example.net")
            .await
            .unwrap();
        click(&c, "button[type=submit]").await;
        eventually("the field's error", || async {
            text_of(&c, "#email-error").await
        })
        .await;
        assert_eq!(
            c.find(Locator::Css("#email"))
                .await
                .unwrap()
                .attr("aria-invalid")
                .await
                .unwrap()
                .as_deref(),
            Some("true")
        );

        let email = c.find(Locator::Css("#email")).await.unwrap();
        email.clear().await.unwrap();
        email.send_keys(READER).await.unwrap();
        click(&c, "input[value=am]").await;
        click(&c, "button[type=submit]").await;
        wait_for_state(&c, "check-inbox").await;
        let l = Ledger::open(&dir.join(".briefing/ledger.sqlite")).unwrap();
        assert!(l.subscribers(None).unwrap().is_empty());

        let sent: Vec<_> = std::fs::read_dir(dir.join("out/outbox/signup"))
            .unwrap()
            .collect();
        assert_eq!(sent.len(), 1);
        let raw = std::fs::read(sent[0].as_ref().unwrap().path()).unwrap();
        let msg = MessageParser::default().parse(&raw).unwrap();
        let text = msg.body_text(0).unwrap().into_owned();
        let link = text
            .split_whitespace()
            .find(|w| w.starts_with("https://news.example.com/subscribe/confirm?"))
            .unwrap()
            .replace("https://news.example.com", &server_url(&url));
        c.goto(&link).await.unwrap();
        wait_for_state(&c, "confirm-signup").await;
        assert!(l.subscribers(None).unwrap().is_empty());
        click(&c, "main form button").await;
        wait_for_state(&c, "subscribed").await;
        let rows: Vec<(String, String)> = (l.subscribers(None).unwrap().into_iter())
            .map(|s| (s.newsletter, s.email))
            .collect();
        assert_eq!(
            rows,
            [
                ("am".to_string(), READER.to_string()),
                ("world".to_string(), READER.to_string())
            ]
        );
        let ua = &l.subscribers(Some("am")).unwrap()[0].evidence["user_agent"];
        assert!(ua.as_str().unwrap_or_default().contains("Chrome"), "{ua}");
        assert!(c.get_all_cookies().await.unwrap().is_empty());
    })
    .await;
    drop(server);
}

/// `http://127.0.0.1:PORT` of a page's URL.
fn server_url(url: &str) -> String {
    let rest = url.strip_prefix("http://").unwrap();
    format!("http://{}", rest.split('/').next().unwrap())
}
