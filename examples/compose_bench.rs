//! Measures single-threaded message composition for a 30 KB edition
//! (about 20 KB HTML + 10 KB text), without and with DKIM.
//!
//!     cargo run --release --example compose_bench [messages] [--no-dkim]

use std::path::Path;
use std::time::Instant;

use briefing::mail::message::{
    DkimAlgorithm, DkimSettings, DkimSigner, MessageSpec, compose, message_id,
};
use briefing::mail::token::{DEV_SECRET, unsubscribe_url};
use chrono::Utc;

fn edition() -> (String, String) {
    let para = "Ministers met on Tuesday to discuss the budget; the opposition said the plan was “unfunded” — and promised to vote against it.";
    let mut html = String::from(
        "<!doctype html><html lang=\"en\"><body><table role=\"presentation\" width=\"600\">\n",
    );
    let mut n = 0;
    while html.len() < 20 * 1024 {
        n += 1;
        html.push_str(&format!(
            "<tr><td style=\"padding:8px;font-family:Georgia,serif;font-size:16px;line-height:1.4\"><a href=\"https://news.example.com/world/item-{n}?utm_source=brief\" style=\"color:#1a1a1a\">{para}</a></td></tr>\n"
        ));
    }
    html.push_str("</table></body></html>\n");
    let mut text = String::from("MORNING BRIEF\n\n");
    while text.len() < 10 * 1024 {
        text.push_str("Ministers met on Tuesday to discuss the budget; the opposition\nsaid the plan was \"unfunded\" and promised to vote against it.\n[1] https://news.example.com/world/item\n\n");
    }
    (html, text)
}

fn run(label: &str, n: usize, dkim: Option<&DkimSigner>) -> Result<(), Box<dyn std::error::Error>> {
    let (html, text) = edition();
    let mut spec = MessageSpec {
        from: "Morning Brief <brief@news.example.com>".parse()?,
        to: "Reader <reader@example.org>".parse()?,
        reply_to: None,
        subject: "Morning Brief: Budget “unfunded”, rain later".to_owned(),
        text,
        html,
        message_id: String::new(),
        list_id: "Morning Brief <am.news.example.com>".to_owned(),
        unsubscribe_url: String::new(),
        unsubscribe_mailto: Some("unsubscribe@news.example.com".to_owned()),
        feedback_id: Some("am:briefing:newsroom".to_owned()),
        date: Utc::now(),
    };
    let mut bytes = 0usize;
    let start = Instant::now();
    for i in 0..n {
        // The per-reader work a real send does: address, Message-ID, token.
        let email = format!("reader{i}@example.org");
        spec.to = lettre::message::Mailbox::new(Some(format!("Reader {i}")), email.parse()?);
        spec.message_id = message_id("am-2026-11-30T0600", &email, "news.example.com");
        spec.unsubscribe_url = unsubscribe_url(
            "https://news.example.com/unsubscribe",
            "am",
            &email,
            DEV_SECRET,
        )?;
        bytes += compose(&spec, dkim)?.len();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{label:<28} {:>9.0} messages/s  ({n} messages, {:.1} KB each, {:.1} µs/message)",
        n as f64 / secs,
        bytes as f64 / n as f64 / 1024.0,
        secs * 1e6 / n as f64
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mail");
    let load = |file: &str, algorithm| {
        DkimSigner::load(&DkimSettings {
            domain: "news.example.com".to_owned(),
            selector: "bench".to_owned(),
            key_file: fixtures.join(file),
            algorithm,
        })
    };
    let ed25519 = load("dkim-ed25519.pem", DkimAlgorithm::Ed25519Sha256)?;
    let rsa = load("dkim-rsa.pem", DkimAlgorithm::RsaSha256)?;
    run("compose, no DKIM", n, None)?;
    if std::env::args().any(|a| a == "--no-dkim") {
        return Ok(());
    }
    run("compose + DKIM ed25519", n, Some(&ed25519))?;
    run("compose + DKIM rsa-2048", (n / 10).max(1), Some(&rsa))?;
    Ok(())
}
