//! The MIME walk: one returned message, parsed once with mail-parser, turned
//! into the owned pieces the readers need (report bodies, the original's
//! headers, the human-readable text). mail-parser is used here and only here.

use std::borrow::Cow;

use mail_parser::{Address, HeaderValue, Message, MessageParser, MimeHeaders, PartType};

/// What the readers need from one message.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The outer message's header fields, in order, values as written
    /// (unfolded by mail-parser's raw reader only as far as it goes).
    pub headers: Vec<(String, String)>,
    pub subject: Option<String>,
    /// The `From` address.
    pub from: Option<String>,
    pub message_id: Option<String>,
    /// `To` and `Cc` addresses.
    pub to: Vec<String>,
    /// Human-readable bodies (HTML turned to text where there is no text).
    pub texts: Vec<String>,
    /// `message/delivery-status` (and `global-delivery-status`) bodies.
    pub delivery_status: Vec<String>,
    /// `message/feedback-report` bodies.
    pub feedback_reports: Vec<String>,
    /// The returned original(s): attached whole or as headers only.
    pub returned: Vec<Returned>,
    /// Decoded texts to search for our tags and Message-IDs, besides the raw
    /// bytes (quoted-printable or base64 would hide them there).
    pub haystacks: Vec<String>,
}

/// The headers of a returned original.
#[derive(Debug, Default, Clone)]
pub struct Returned {
    pub message_id: Option<String>,
    pub to: Vec<String>,
}

impl Parsed {
    /// Values of every header named `name` (case-insensitive).
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Most parts a message may have before the rest is ignored: real bounces
/// have three or four; thousands are an attack on our time.
const MAX_PARTS: usize = 200;
/// Most human-readable bodies read.
const MAX_TEXTS: usize = 8;

/// Parses `raw`; `None` when it has no header at all (empty input, binary
/// noise). mail-parser promises never to panic; should it break that promise
/// on some input, the message counts as unreadable rather than taking the
/// whole run down (a maildir of thousands must not stop at one message).
pub fn parse(raw: &[u8]) -> Option<Parsed> {
    std::panic::catch_unwind(|| {
        let msg = MessageParser::default().parse(raw)?;
        Some(collect(&msg))
    })
    .ok()
    .flatten()
}

fn collect(msg: &Message<'_>) -> Parsed {
    let mut p = Parsed {
        headers: msg
            .headers_raw()
            .map(|(n, v)| (n.to_owned(), v.trim().to_owned()))
            .collect(),
        subject: msg.subject().map(str::to_owned),
        from: msg.from().and_then(first_address),
        message_id: msg.message_id().map(|id| format!("<{id}>")),
        to: msg
            .to()
            .into_iter()
            .chain(msg.cc())
            .flat_map(all_addresses)
            .collect(),
        ..Parsed::default()
    };
    // The human-readable text: the first few text bodies (mail-parser turns
    // an HTML-only body into text).
    for i in 0..MAX_TEXTS {
        match msg.body_text(i) {
            Some(t) => p.texts.push(t.into_owned()),
            None => break,
        }
    }
    for part in msg.parts.iter().take(MAX_PARTS) {
        let (ctype, subtype) = match part.content_type() {
            Some(ct) => (
                ct.ctype().to_ascii_lowercase(),
                ct.subtype().unwrap_or_default().to_ascii_lowercase(),
            ),
            None => (String::new(), String::new()),
        };
        match (&part.body, ctype.as_str(), subtype.as_str()) {
            (PartType::Message(inner), _, _) => {
                p.returned.push(returned(inner));
                // A nested message that was transfer-encoded (not allowed,
                // but done) is decoded into a buffer of its own.
                if let Cow::Owned(bytes) = &inner.raw_message {
                    p.haystacks
                        .push(String::from_utf8_lossy(bytes).into_owned());
                }
            }
            (_, "message", "delivery-status" | "global-delivery-status") => {
                p.delivery_status.push(lossy(part.contents()));
            }
            (_, "message", "feedback-report") => {
                p.feedback_reports.push(lossy(part.contents()));
            }
            (_, "text", "rfc822-headers") | (_, "message", "global-headers") => {
                let text = lossy(part.contents());
                // The part may end without a line end after its last header
                // (the CRLF before a boundary belongs to the boundary), which
                // leaves mail-parser without that header; supply one.
                let headers = format!("{}\r\n\r\n", text.trim_end());
                if let Some(h) = MessageParser::default().parse_headers(headers.as_bytes()) {
                    p.returned.push(returned(&h));
                }
                p.haystacks.push(text);
            }
            (PartType::Text(t) | PartType::Html(t), _, _) => {
                p.haystacks.push(t.to_string());
            }
            _ => {}
        }
    }
    p
}

fn returned(msg: &Message<'_>) -> Returned {
    Returned {
        message_id: msg.message_id().map(|id| format!("<{id}>")),
        to: msg.to().map(all_addresses).unwrap_or_default(),
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn first_address(a: &Address<'_>) -> Option<String> {
    a.first().and_then(|a| a.address()).map(str::to_owned)
}

fn all_addresses(a: &Address<'_>) -> Vec<String> {
    a.iter()
        .filter_map(|a| a.address())
        .map(str::to_owned)
        .collect()
}

/// Addresses in a raw header value such as `Delivered-To` or `Envelope-To`.
pub fn header_addresses(value: &str) -> Vec<String> {
    let line = format!("To: {value}\r\n\r\n");
    MessageParser::default()
        .parse_headers(line.as_bytes())
        .and_then(|m| match m.header("To") {
            Some(HeaderValue::Address(a)) => Some(all_addresses(a)),
            _ => None,
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input_has_no_message() {
        assert!(parse(b"").is_none());
    }

    #[test]
    fn collects_report_parts_and_the_returned_headers() {
        let raw = b"From: Mail Delivery System <MAILER-DAEMON@relay.example>\r\n\
To: bounces+t@news.example.com\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nI'm sorry.\r\n\
--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; relay.example\r\n\r\nFinal-Recipient: rfc822; a@b.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n\
--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <am-x.0123456789abcdef@news.example.com>\r\nTo: a@b.example\r\n\r\n\
--b--\r\n";
        let p = parse(raw).unwrap();
        assert_eq!(p.from.as_deref(), Some("MAILER-DAEMON@relay.example"));
        assert_eq!(p.to, ["bounces+t@news.example.com"]);
        assert_eq!(p.delivery_status.len(), 1);
        assert!(p.delivery_status[0].contains("Final-Recipient: rfc822; a@b.example"));
        assert_eq!(p.returned.len(), 1);
        assert_eq!(
            p.returned[0].message_id.as_deref(),
            Some("<am-x.0123456789abcdef@news.example.com>")
        );
        assert_eq!(p.returned[0].to, ["a@b.example"]);
        assert!(p.texts[0].contains("I'm sorry."));
    }

    #[test]
    fn header_address_lists() {
        assert_eq!(
            header_addresses("unsubscribe+x@news.example.com"),
            ["unsubscribe+x@news.example.com"]
        );
        assert_eq!(
            header_addresses("<a@b.example>, c@d.example"),
            ["a@b.example", "c@d.example"]
        );
        assert!(header_addresses("").is_empty());
    }
}
