//! Messages for the delivery tests: a realistic spec per reader.

use briefing::mail::message::{MessageSpec, message_id};
use briefing::mail::token::unsubscribe_url;
use chrono::TimeZone;

pub const SECRET: &[u8] = b"test-secret";

/// A realistic spec for reader `i`, with about `html_kb` KB of HTML.
pub fn spec(i: usize, html_kb: usize) -> MessageSpec {
    let email = format!("reader{i}@example.org");
    let para = "Ministers met on Tuesday to discuss the budget; the opposition said the plan was “unfunded” — and promised to vote against it.";
    let mut text = String::from("MORNING BRIEF\n\n");
    let mut html = String::from(
        "<!doctype html><html lang=\"en\"><body><table role=\"presentation\" width=\"600\">\n",
    );
    let mut n = 0;
    while html.len() < html_kb * 1024 {
        n += 1;
        html.push_str(&format!(
            "<tr><td style=\"padding:8px;font-family:Georgia,serif;font-size:16px\"><a href=\"https://news.example.com/world/item-{n}?utm_source=brief\">{para}</a></td></tr>\n"
        ));
    }
    while text.len() < html_kb * 512 {
        text.push_str(para);
        text.push_str("\n[1] https://news.example.com/world/item\n\n");
    }
    html.push_str("</table></body></html>\n");
    MessageSpec {
        from: "Morning Brief <brief@news.example.com>".parse().unwrap(),
        to: format!("Reader Nº{i} <{email}>").parse().unwrap(),
        reply_to: Some("Newsdesk <desk@news.example.com>".parse().unwrap()),
        subject: "Morning Brief: Budget “unfunded”, rain later".to_owned(),
        text,
        html,
        message_id: message_id("am-2026-11-30T0600", &email, "news.example.com"),
        list_id: "Morning Brief <am.news.example.com>".to_owned(),
        unsubscribe_url: unsubscribe_url(
            "https://news.example.com/unsubscribe",
            "am",
            &email,
            SECRET,
        )
        .unwrap(),
        unsubscribe_mailto: Some("unsubscribe@news.example.com".to_owned()),
        feedback_id: Some("am:briefing:newsroom".to_owned()),
        date: chrono::Utc.with_ymd_and_hms(2026, 11, 30, 6, 0, 0).unwrap(),
    }
}
