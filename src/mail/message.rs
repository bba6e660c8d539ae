//! One outgoing message per reader: headers a bulk sender needs (List-Id,
//! one-click List-Unsubscribe, Feedback-ID), a text+HTML multipart/alternative
//! body, and optional DKIM. Header values are checked for line breaks here,
//! because they come from front-matter and config written by people.
//!
//! Part bodies are encoded by hand (7bit, quoted-printable or base64): lettre's
//! builder composes about 5,000 msg/s for a 30 KB edition, this about eight
//! times that. lettre still assembles the headers (RFC 2047, folding) and signs.

use std::fmt::Write as _;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use lettre::Message;
use lettre::message::header::{
    ContentTransferEncoding, ContentType, HeaderName, HeaderValue, MIME_VERSION_1_0,
};
use lettre::message::{Body, Mailbox};
use sha2::{Digest, Sha256};
use thiserror::Error;

pub use super::dkim::{DkimAlgorithm, DkimError, DkimSettings, DkimSigner};

/// Everything that varies between two messages of one send.
#[derive(Debug, Clone)]
pub struct MessageSpec {
    pub from: Mailbox,
    pub to: Mailbox,
    pub reply_to: Option<Mailbox>,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// `<edition-id.hash@domain>`, see [`message_id`].
    pub message_id: String,
    /// RFC 2919 list identifier, e.g. `Morning Brief <am.news.example.com>`.
    pub list_id: String,
    /// https URL with a per-reader token (see [`crate::mail::token::unsubscribe_url`]).
    pub unsubscribe_url: String,
    /// `unsubscribe@news.example.com` or a full `mailto:` URL.
    pub unsubscribe_mailto: Option<String>,
    /// Gmail feedback loop id; must not contain per-reader data.
    pub feedback_id: Option<String>,
    pub date: DateTime<Utc>,
}

#[derive(Debug, Error)]
pub enum MessageError {
    /// A header-bound value carries CR, LF or another control character:
    /// passing it on could inject headers, so the message is refused.
    #[error("{field} contains a control character (line break, tab or similar): {value:?}")]
    HeaderInjection { field: &'static str, value: String },
    #[error("{field} is empty")]
    Empty { field: &'static str },
    #[error("{field} is too long ({len} characters, at most {max})")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("invalid List-Id {0:?}: expected `Name <label.example.com>`")]
    InvalidListId(String),
    #[error("invalid Message-ID {0:?}: expected `<left@domain>`")]
    InvalidMessageId(String),
    #[error("unsubscribe URL {0:?} must be an https:// URL without spaces, `<`, `>` or `,`")]
    InvalidUnsubscribeUrl(String),
    #[error("invalid unsubscribe mailto {0:?}")]
    InvalidMailto(String),
    #[error("feedback id {0:?} may only contain printable ASCII without spaces")]
    InvalidFeedbackId(String),
    #[error("cannot assemble the message")]
    Build(#[from] lettre::error::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Longest URL put in List-Unsubscribe: keeps the header line well under the
/// 998-octet limit even with the mailto part.
const MAX_URL_LEN: usize = 600;
const MAX_SUBJECT_LEN: usize = 400;
const MAX_NAME_LEN: usize = 200;

/// A deterministic Message-ID: `<edition-id.hash@from-domain>`, where hash is
/// the first 16 hex digits of SHA-256 of the lower-cased address. The same
/// reader gets the same id on a retry, so duplicates can be recognised, and
/// the address itself is not exposed. Characters outside RFC 5322 atext are
/// replaced by `-`.
pub fn message_id(edition_id: &str, email: &str, from_domain: &str) -> String {
    let hash = address_hash(email);
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii() && (c == '.' || crate::audience::is_atext(c as u8)) {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    format!(
        "<{}.{hash}@{}>",
        clean(edition_id).trim_matches('.'),
        clean(from_domain).trim_matches('.')
    )
}

/// The 16 hex digits of a Message-ID that stand for its recipient: SHA-256
/// of the lower-cased address, its first 8 bytes.
pub fn address_hash(email: &str) -> String {
    let digest = Sha256::digest(email.to_ascii_lowercase().as_bytes());
    hex::encode(&digest[..8])
}

/// Composes the message and returns the bytes to put after SMTP `DATA`
/// (CRLF line ends, 7-bit clean, lines at most 998 octets).
pub fn compose(spec: &MessageSpec, dkim: Option<&DkimSigner>) -> Result<Vec<u8>, MessageError> {
    let bytes = build_message(spec)?.formatted();
    match dkim {
        None => Ok(bytes),
        Some(signer) => {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            signer
                .sign(&bytes, now)
                .map_err(|e| MessageError::Internal(e.to_string()))
        }
    }
}

/// The headers of a message, checked: everything composing can refuse
/// besides the bodies. Planning runs it for every recipient before an
/// edition is frozen, so no message fails to compose once sending starts.
pub struct CheckedHeaders {
    list_id: HeaderValue,
    unsubscribe: String,
    feedback_id: Option<String>,
}

/// Checks every header-bound value of `spec` (names, subject, ids, URLs).
pub fn check_headers(spec: &MessageSpec) -> Result<CheckedHeaders, MessageError> {
    check_mailbox("From name", &spec.from)?;
    check_mailbox("To name", &spec.to)?;
    if let Some(reply_to) = &spec.reply_to {
        check_mailbox("Reply-To name", reply_to)?;
    }
    check_header_text("Subject", &spec.subject, MAX_SUBJECT_LEN)?;
    check_message_id(&spec.message_id)?;
    Ok(CheckedHeaders {
        list_id: list_id_header(&spec.list_id)?,
        unsubscribe: list_unsubscribe_value(
            &spec.unsubscribe_url,
            spec.unsubscribe_mailto.as_deref(),
        )?,
        feedback_id: spec
            .feedback_id
            .as_deref()
            .map(feedback_id_value)
            .transpose()?,
    })
}

/// Composes the message as a lettre [`Message`], unsigned ([`compose`]
/// signs its bytes).
pub fn build_message(spec: &MessageSpec) -> Result<Message, MessageError> {
    let CheckedHeaders {
        list_id,
        unsubscribe,
        feedback_id,
    } = check_headers(spec)?;

    let (content_type, body) = alternative(&spec.message_id, &spec.text, &spec.html)?;
    let mut builder = Message::builder()
        .from(spec.from.clone())
        .to(spec.to.clone());
    if let Some(reply_to) = &spec.reply_to {
        builder = builder.reply_to(reply_to.clone());
    }
    builder = builder
        .subject(spec.subject.clone())
        .date(SystemTime::from(spec.date))
        .message_id(Some(spec.message_id.clone()))
        .header(MIME_VERSION_1_0)
        .raw_header(list_id)
        .raw_header(HeaderValue::new(LIST_UNSUBSCRIBE, unsubscribe))
        .raw_header(HeaderValue::new(
            LIST_UNSUBSCRIBE_POST,
            "List-Unsubscribe=One-Click".to_owned(),
        ));
    if let Some(feedback_id) = feedback_id {
        builder = builder.raw_header(HeaderValue::new(FEEDBACK_ID, feedback_id));
    }
    // The multipart structure is written by hand, so Content-Type belongs
    // to the top-level headers, where DKIM can sign it (lettre signs only
    // top-level headers; its own MultiPart keeps Content-Type apart).
    Ok(builder
        .header(content_type)
        .body(Body::dangerous_pre_encoded(
            body,
            ContentTransferEncoding::SevenBit,
        ))?)
}

/// The text and HTML twins as one `multipart/alternative` body, 7-bit
/// clean, with its Content-Type.
fn alternative(
    message_id: &str,
    text: &str,
    html: &str,
) -> Result<(ContentType, Vec<u8>), MessageError> {
    // Derived from the Message-ID so output is reproducible. "=_" cannot occur
    // in quoted-printable or base64 text; 7bit parts are checked below.
    let boundary = {
        let digest = Sha256::digest(message_id.as_bytes());
        format!("=_{}", hex::encode(&digest[..12]))
    };
    let mut body = Vec::with_capacity(text.len() + html.len() + html.len() / 8 + 512);
    write_part(&mut body, &boundary, "text/plain; charset=utf-8", text);
    write_part(&mut body, &boundary, "text/html; charset=utf-8", html);
    body.extend_from_slice(b"--");
    body.extend_from_slice(boundary.as_bytes());
    body.extend_from_slice(b"--\r\n");
    let content_type =
        ContentType::parse(&format!("multipart/alternative; boundary=\"{boundary}\""))
            .map_err(|e| MessageError::Internal(format!("content type: {e}")))?;
    Ok((content_type, body))
}

/// A transactional message to one person (a sign-up's confirmation): no
/// list headers, since there is no list to leave yet.
#[derive(Debug, Clone)]
pub struct NoticeSpec {
    pub from: Mailbox,
    pub to: Mailbox,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub message_id: String,
    pub date: DateTime<Utc>,
}

const AUTO_SUBMITTED: HeaderName = HeaderName::new_from_ascii_str("Auto-Submitted");

/// Composes a [`NoticeSpec`], held to the same header checks as an
/// edition's messages, signed when `dkim` is given.
pub fn compose_notice(
    spec: &NoticeSpec,
    dkim: Option<&DkimSigner>,
) -> Result<Vec<u8>, MessageError> {
    check_mailbox("From name", &spec.from)?;
    check_mailbox("To name", &spec.to)?;
    check_header_text("Subject", &spec.subject, MAX_SUBJECT_LEN)?;
    check_message_id(&spec.message_id)?;
    let (content_type, body) = alternative(&spec.message_id, &spec.text, &spec.html)?;
    let bytes = Message::builder()
        .from(spec.from.clone())
        .to(spec.to.clone())
        .subject(spec.subject.clone())
        .date(SystemTime::from(spec.date))
        .message_id(Some(spec.message_id.clone()))
        .header(MIME_VERSION_1_0)
        // RFC 3834: made by a program, not by a person; auto-responders
        // must not answer it.
        .raw_header(HeaderValue::new(
            AUTO_SUBMITTED,
            "auto-generated".to_owned(),
        ))
        .header(content_type)
        .body(Body::dangerous_pre_encoded(
            body,
            ContentTransferEncoding::SevenBit,
        ))?
        .formatted();
    match dkim {
        None => Ok(bytes),
        Some(signer) => signer
            .sign(&bytes, spec.date.timestamp().max(0) as u64)
            .map_err(|e| MessageError::Internal(e.to_string())),
    }
}

const LIST_ID: HeaderName = HeaderName::new_from_ascii_str("List-Id");
const LIST_UNSUBSCRIBE: HeaderName = HeaderName::new_from_ascii_str("List-Unsubscribe");
const LIST_UNSUBSCRIBE_POST: HeaderName = HeaderName::new_from_ascii_str("List-Unsubscribe-Post");
const FEEDBACK_ID: HeaderName = HeaderName::new_from_ascii_str("Feedback-ID");

fn has_control(s: &str) -> bool {
    // Unicode line and paragraph separators are not SMTP line breaks but some
    // clients render them as such; they have no business in a header either.
    s.chars()
        .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}')
}

fn check_header_text(field: &'static str, value: &str, max: usize) -> Result<(), MessageError> {
    if has_control(value) {
        return Err(MessageError::HeaderInjection {
            field,
            value: value.to_owned(),
        });
    }
    if value.trim().is_empty() {
        return Err(MessageError::Empty { field });
    }
    let len = value.chars().count();
    if len > max {
        return Err(MessageError::TooLong { field, len, max });
    }
    Ok(())
}

fn check_mailbox(field: &'static str, mailbox: &Mailbox) -> Result<(), MessageError> {
    // The address part was validated when the Mailbox was built (lettre
    // refuses control characters there); the display name was not.
    match &mailbox.name {
        Some(name) => check_header_text(field, name, MAX_NAME_LEN),
        None => Ok(()),
    }
}

fn check_message_id(id: &str) -> Result<(), MessageError> {
    let invalid = || MessageError::InvalidMessageId(id.to_owned());
    if has_control(id) {
        return Err(MessageError::HeaderInjection {
            field: "Message-ID",
            value: id.to_owned(),
        });
    }
    let inner = id
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .ok_or_else(invalid)?;
    let (left, right) = inner.split_once('@').ok_or_else(invalid)?;
    let dot_atom = |s: &str| {
        !s.is_empty()
            && !s.starts_with('.')
            && !s.ends_with('.')
            && !s.contains("..")
            && s.bytes().all(|b| b == b'.' || crate::audience::is_atext(b))
    };
    if dot_atom(left) && dot_atom(right) && id.len() <= 250 {
        Ok(())
    } else {
        Err(invalid())
    }
}

/// Parses `Name <label.example.com>` (or a bare `label.example.com`) into a
/// header whose phrase is encoded safely: plain atoms stay readable, anything
/// else (specials, non-ASCII) becomes RFC 2047 encoded words.
fn list_id_header(value: &str) -> Result<HeaderValue, MessageError> {
    if has_control(value) {
        return Err(MessageError::HeaderInjection {
            field: "List-Id",
            value: value.to_owned(),
        });
    }
    let invalid = || MessageError::InvalidListId(value.to_owned());
    let trimmed = value.trim();
    let (phrase, id) = match trimmed.strip_suffix('>') {
        Some(rest) => {
            let (phrase, id) = rest.rsplit_once('<').ok_or_else(invalid)?;
            (phrase.trim(), id)
        }
        None => ("", trimmed),
    };
    let id_ok = id.contains('.')
        && !id.starts_with('.')
        && !id.ends_with('.')
        && !id.contains("..")
        && id.len() <= 255
        && id
            .bytes()
            .all(|b| b == b'.' || crate::audience::is_atext(b));
    if !id_ok || phrase.chars().count() > MAX_NAME_LEN {
        return Err(invalid());
    }
    if phrase.is_empty() {
        return Ok(HeaderValue::new(LIST_ID, format!("<{id}>")));
    }
    let plain = phrase
        .bytes()
        .all(|b| b == b' ' || crate::audience::is_atext(b));
    let encoded_phrase = if plain {
        phrase.to_owned()
    } else {
        encoded_words(phrase)
    };
    // Encoded words are separated by folding whitespace so no line exceeds
    // 78 characters; the value is ASCII and control-free by construction.
    Ok(HeaderValue::dangerous_new_pre_encoded(
        LIST_ID,
        format!("{phrase} <{id}>"),
        format!("{encoded_phrase}\r\n <{id}>"),
    ))
}

/// RFC 2047 `=?utf-8?b?...?=` words of at most 75 characters, split on
/// character boundaries and joined with folding whitespace.
fn encoded_words(text: &str) -> String {
    // 45 bytes of UTF-8 become 60 base64 characters: 72 with the wrapper.
    const CHUNK: usize = 45;
    let mut words = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + CHUNK).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        words.push(format!(
            "=?utf-8?b?{}?=",
            STANDARD.encode(&text[start..end])
        ));
        start = end;
    }
    words.join("\r\n ")
}

fn list_unsubscribe_value(url: &str, mailto: Option<&str>) -> Result<String, MessageError> {
    if has_control(url) {
        return Err(MessageError::HeaderInjection {
            field: "unsubscribe URL",
            value: url.to_owned(),
        });
    }
    // RFC 8058 one-click requires https; the URL sits inside <...> in a
    // comma-separated list, so those characters (and spaces) are refused.
    let url_ok = url.starts_with("https://")
        && url.len() > "https://".len()
        && url.len() <= MAX_URL_LEN
        && url
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b',' | b'"'));
    if !url_ok {
        return Err(MessageError::InvalidUnsubscribeUrl(url.to_owned()));
    }
    let mut value = format!("<{url}>");
    if let Some(mailto) = mailto {
        if has_control(mailto) {
            return Err(MessageError::HeaderInjection {
                field: "unsubscribe mailto",
                value: mailto.to_owned(),
            });
        }
        let address = mailto.strip_prefix("mailto:").unwrap_or(mailto);
        let mailto_ok = address.contains('@')
            && address.len() <= MAX_URL_LEN
            && address
                .bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b',' | b'"'));
        if !mailto_ok {
            return Err(MessageError::InvalidMailto(mailto.to_owned()));
        }
        let query = if address.contains('?') {
            ""
        } else {
            "?subject=unsubscribe"
        };
        let _ = write!(value, ", <mailto:{address}{query}>");
    }
    Ok(value)
}

fn feedback_id_value(value: &str) -> Result<String, MessageError> {
    if has_control(value) {
        return Err(MessageError::HeaderInjection {
            field: "Feedback-ID",
            value: value.to_owned(),
        });
    }
    if value.is_empty() || value.len() > 200 || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(MessageError::InvalidFeedbackId(value.to_owned()));
    }
    Ok(value.to_owned())
}

/// Appends one MIME part (delimiter, part headers, encoded body).
fn write_part(out: &mut Vec<u8>, boundary: &str, content_type: &str, text: &str) {
    let encoding = choose_encoding(text.as_bytes(), boundary.as_bytes());
    out.extend_from_slice(b"--");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(b"\r\nContent-Type: ");
    out.extend_from_slice(content_type.as_bytes());
    out.extend_from_slice(b"\r\nContent-Transfer-Encoding: ");
    out.extend_from_slice(encoding.name().as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    match encoding {
        BodyEncoding::SevenBit => copy_crlf(text.as_bytes(), out),
        BodyEncoding::QuotedPrintable => encode_quoted_printable(text.as_bytes(), out),
        BodyEncoding::Base64 => encode_base64_text(text.as_bytes(), out),
    }
    // The CRLF before the next delimiter belongs to the delimiter (RFC 2046
    // 5.1.1), so a body that ends with a line break keeps it.
    out.extend_from_slice(b"\r\n");
}

/// Content-Transfer-Encoding of one text part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEncoding {
    SevenBit,
    QuotedPrintable,
    Base64,
}

impl BodyEncoding {
    pub fn name(self) -> &'static str {
        match self {
            BodyEncoding::SevenBit => "7bit",
            BodyEncoding::QuotedPrintable => "quoted-printable",
            BodyEncoding::Base64 => "base64",
        }
    }
}

/// 7bit when the text already is (ASCII, lines of at most 998 octets, no NUL
/// or bare CR, no line that could be taken for the boundary); base64 when over
/// a third of the bytes are non-ASCII (quoted-printable would triple them);
/// quoted-printable otherwise.
pub fn choose_encoding(text: &[u8], boundary: &[u8]) -> BodyEncoding {
    // Separate simple passes: each one vectorises or uses memchr, which is
    // several times faster than one loop with a branch per byte.
    let non_ascii = count_non_ascii(text);
    let seven_bit = non_ascii == 0
        && memchr::memchr(0, text).is_none()
        && memchr::memchr_iter(b'\r', text).all(|i| text.get(i + 1) == Some(&b'\n'))
        && max_line_len(text) <= 998
        && memchr::memmem::find(text, boundary).is_none();
    if seven_bit {
        BodyEncoding::SevenBit
    } else if non_ascii * 3 > text.len() {
        BodyEncoding::Base64
    } else {
        BodyEncoding::QuotedPrintable
    }
}

fn count_non_ascii(text: &[u8]) -> usize {
    if text.is_ascii() {
        return 0;
    }
    // Byte-wide counters over chunks of at most 255 vectorise well; a usize
    // counter per byte does not.
    text.chunks(255)
        .map(|chunk| chunk.iter().fold(0u8, |n, &b| n + (b >> 7)) as usize)
        .sum()
}

/// Longest line in octets, not counting its line break.
fn max_line_len(text: &[u8]) -> usize {
    let mut longest = 0;
    let mut start = 0;
    for nl in memchr::memchr_iter(b'\n', text) {
        let end = if nl > start && text[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        longest = longest.max(end - start);
        start = nl + 1;
    }
    longest.max(text.len() - start)
}

/// Copies text, turning LF line ends into CRLF (CRLF stays CRLF).
fn copy_crlf(text: &[u8], out: &mut Vec<u8>) {
    let mut start = 0;
    for nl in memchr::memchr_iter(b'\n', text) {
        let line_end = if nl > start && text[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        out.extend_from_slice(&text[start..line_end]);
        out.extend_from_slice(b"\r\n");
        start = nl + 1;
    }
    out.extend_from_slice(&text[start..]);
}

/// Base64 of the text in canonical (CRLF) form, 76-character lines.
fn encode_base64_text(text: &[u8], out: &mut Vec<u8>) {
    let mut canonical = Vec::with_capacity(text.len() + text.len() / 32);
    copy_crlf(text, &mut canonical);
    let mut first = true;
    for chunk in canonical.chunks(57) {
        if !first {
            out.extend_from_slice(b"\r\n");
        }
        first = false;
        let start = out.len();
        out.resize(start + 76, 0);
        let written = STANDARD
            .encode_slice(chunk, &mut out[start..])
            .unwrap_or_else(|_| unreachable!("57 bytes always fit in 76 base64 characters"));
        out.truncate(start + written);
    }
}

/// Bytes that quoted-printable may carry literally (RFC 2045 6.7 rule 2),
/// plus space and tab, which are literal unless they end a line.
const QP_LITERAL: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 33;
    while b <= 126 {
        table[b] = b != b'=' as usize;
        b += 1;
    }
    table[b' ' as usize] = true;
    table[b'\t' as usize] = true;
    table
};

/// RFC 2045 lines: at most 76 characters including a soft-break `=`.
const QP_LINE: usize = 76;

/// Quoted-printable encoding of text (RFC 2045 6.7). Line breaks (LF or CRLF)
/// become hard CRLF breaks; whitespace before a line break is encoded; long
/// lines get soft breaks. The hot loop copies runs of literal bytes, which is
/// what most HTML is.
pub fn encode_quoted_printable(input: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let len = input.len();
    let mut col = 0usize;
    let mut i = 0usize;

    // Encodes a space or tab that turned out to end a line.
    fn encode_trailing_ws(out: &mut Vec<u8>, col: &mut usize) {
        if *col > 0
            && let Some(&last @ (b' ' | b'\t')) = out.last()
        {
            out.pop();
            *col -= 1;
            if *col + 3 > QP_LINE {
                out.extend_from_slice(b"=\r\n");
                *col = 0;
            }
            out.push(b'=');
            out.push(HEX[(last >> 4) as usize]);
            out.push(HEX[(last & 15) as usize]);
            *col += 3;
        }
    }

    while i < len {
        let b = input[i];
        if b == b'\n' || (b == b'\r' && i + 1 < len && input[i + 1] == b'\n') {
            encode_trailing_ws(out, &mut col);
            out.extend_from_slice(b"\r\n");
            col = 0;
            i += if b == b'\r' { 2 } else { 1 };
            continue;
        }
        if QP_LITERAL[b as usize] {
            // Leave room for the soft-break '='.
            let room = QP_LINE - 1 - col;
            let end = len.min(i + room);
            let j = literal_run(input, i, end);
            out.extend_from_slice(&input[i..j]);
            col += j - i;
            i = j;
            if col == QP_LINE - 1 && i < len && !is_line_end(input, i) {
                out.extend_from_slice(b"=\r\n");
                col = 0;
            }
            continue;
        }
        if col + 3 > QP_LINE - 1 {
            out.extend_from_slice(b"=\r\n");
            col = 0;
        }
        out.push(b'=');
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 15) as usize]);
        col += 3;
        i += 1;
    }
    encode_trailing_ws(out, &mut col);
}

/// End of the run of quoted-printable literal bytes in `input[start..end]`.
/// Checks eight bytes at a time (SWAR): printable ASCII other than `=` is by
/// far the common case in HTML; anything else falls back to the table.
fn literal_run(input: &[u8], start: usize, end: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Some byte equals `b` (exact for every byte value).
    #[inline(always)]
    fn has_byte(x: u64, b: u8) -> bool {
        let y = x ^ (ONES * b as u64);
        (y.wrapping_sub(ONES) & !y & HIGH) != 0
    }
    let mut j = start;
    while j + 8 <= end {
        let mut word = [0u8; 8];
        word.copy_from_slice(&input[j..j + 8]);
        let x = u64::from_le_bytes(word);
        // High bit set, or below 0x20 (only tested once no high bit is set,
        // which makes the subtraction exact), or DEL, or '='.
        let special = (x & HIGH) != 0
            || (x.wrapping_sub(ONES * 0x20) & HIGH) != 0
            || has_byte(x, 0x7f)
            || has_byte(x, b'=');
        if special {
            break;
        }
        j += 8;
    }
    while j < end && QP_LITERAL[input[j] as usize] {
        j += 1;
    }
    j
}

fn is_line_end(input: &[u8], i: usize) -> bool {
    input[i] == b'\n' || (input[i] == b'\r' && input.get(i + 1) == Some(&b'\n'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qp(input: &str) -> String {
        let mut out = Vec::new();
        encode_quoted_printable(input.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    /// Minimal reference decoder for round-trip checks.
    fn qp_decode(encoded: &str) -> Vec<u8> {
        let bytes = encoded.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'=' {
                if bytes[i + 1] == b'\r' {
                    i += 3;
                } else {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 3;
                }
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        out
    }

    fn assert_qp_valid(encoded: &str) {
        for line in encoded.split("\r\n") {
            assert!(line.len() <= 76, "line too long ({}): {line:?}", line.len());
            assert!(
                !line.ends_with(' ') && !line.ends_with('\t'),
                "trailing ws: {line:?}"
            );
            assert!(
                line.bytes().all(|b| (32..127).contains(&b) || b == b'\t'),
                "{line:?}"
            );
        }
        assert!(!encoded.replace("\r\n", "").contains('\n'));
    }

    #[test]
    fn quoted_printable_basics() {
        assert_eq!(qp("a=b"), "a=3Db");
        assert_eq!(qp("café"), "caf=C3=A9");
        assert_eq!(qp("end \nnext\t\n"), "end=20\r\nnext=09\r\n");
        assert_eq!(qp("crlf\r\nline"), "crlf\r\nline");
        assert_eq!(qp("trailing "), "trailing=20");
    }

    #[test]
    fn quoted_printable_round_trips_and_wraps() {
        let samples = [
            "x".repeat(300),
            format!("{} \n", "y".repeat(75)),
            "é".repeat(100),
            format!("{}=={}", "a".repeat(73), "b".repeat(10)),
            "<td style=\"padding:8px\">Ministers “met” — today</td>\n".repeat(40),
            format!("{}\r\n{} ", "a ".repeat(60), "c".repeat(74)),
            "\u{0}\r bare CR".to_owned(),
        ];
        for sample in samples {
            let encoded = qp(&sample);
            assert_qp_valid(&encoded);
            let want = sample.replace("\r\n", "\n").replace('\n', "\r\n");
            assert_eq!(qp_decode(&encoded), want.as_bytes(), "{sample:?}");
        }
    }

    #[test]
    fn quoted_printable_random_inputs() {
        // Deterministic pseudo-random mixtures of the characters that matter:
        // '=', spaces and tabs (before line ends too), CR, LF, controls,
        // multi-byte UTF-8 and long runs.
        let alphabet: Vec<&str> = vec![
            "a",
            "Z",
            "0",
            " ",
            "  ",
            "\t",
            "=",
            "==",
            "\n",
            "\r\n",
            "\r",
            ".",
            "é",
            "—",
            "\u{1}",
            "\u{7f}",
            "<td style=\"x\">",
            "https://news.example.com/a?b=c&d=e",
        ];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..400 {
            let pieces = (next() % 200) as usize;
            let mut sample = String::new();
            for _ in 0..pieces {
                let piece = alphabet[(next() % alphabet.len() as u64) as usize];
                let repeat = if next() % 10 == 0 {
                    (next() % 120) as usize
                } else {
                    1
                };
                for _ in 0..repeat {
                    sample.push_str(piece);
                }
            }
            let encoded = qp(&sample);
            assert_qp_valid(&encoded);
            // CRLF and LF are both line ends; a lone CR is data.
            let want = sample.replace("\r\n", "\n").replace('\n', "\r\n");
            assert_eq!(qp_decode(&encoded), want.as_bytes(), "{sample:?}");
        }
    }

    #[test]
    fn counts_non_ascii_and_lines() {
        let text = "é".repeat(300);
        assert_eq!(count_non_ascii(text.as_bytes()), 600);
        assert_eq!(count_non_ascii(b"plain"), 0);
        assert_eq!(max_line_len(b"ab\r\nabcd\nx"), 4);
        assert_eq!(max_line_len(b"abcdef"), 6);
        assert_eq!(max_line_len(b""), 0);
    }

    #[test]
    fn chooses_encodings() {
        let b = b"=_boundary";
        assert_eq!(
            choose_encoding(b"plain ascii\nlines\n", b),
            BodyEncoding::SevenBit
        );
        assert_eq!(
            choose_encoding("a".repeat(999).as_bytes(), b),
            BodyEncoding::QuotedPrintable
        );
        assert_eq!(
            choose_encoding("mostly ascii, one é".as_bytes(), b),
            BodyEncoding::QuotedPrintable
        );
        assert_eq!(
            choose_encoding("Ελληνικά νέα".as_bytes(), b),
            BodyEncoding::Base64
        );
        assert_eq!(
            choose_encoding(b"bare\rcr", b),
            BodyEncoding::QuotedPrintable
        );
        assert_eq!(
            choose_encoding(b"x\n--=_boundary\n", b),
            BodyEncoding::QuotedPrintable
        );
    }

    #[test]
    fn message_id_is_deterministic_and_clean() {
        let a = message_id("am-2026-11-30T0600", "Ana@Example.com", "news.example.com");
        let b = message_id("am-2026-11-30T0600", "ana@example.com", "news.example.com");
        assert_eq!(a, b);
        assert!(a.starts_with("<am-2026-11-30T0600."));
        assert!(a.ends_with("@news.example.com>"));
        assert_eq!(a.len(), "<am-2026-11-30T0600.@news.example.com>".len() + 16);
        assert!(check_message_id(&a).is_ok());
        assert_ne!(
            a,
            message_id("am-2026-11-30T0600", "bob@example.com", "news.example.com")
        );
        let odd = message_id("am 1<2>", "a@b.c", "news.example.com");
        assert!(check_message_id(&odd).is_ok(), "{odd}");
    }

    #[test]
    fn list_id_forms() {
        let h = |v: &str| list_id_header(v).map(|_| ());
        assert!(h("Morning Brief <am.news.example.com>").is_ok());
        assert!(h("am.news.example.com").is_ok());
        assert!(h("Brief, Früh <am.news.example.com>").is_ok());
        assert!(h("Morning Brief <nodot>").is_err());
        assert!(h("Morning Brief <am.news.example.com").is_err());
        assert!(matches!(
            list_id_header("Brief\r\nBcc: x@y.z <am.news.example.com>"),
            Err(MessageError::HeaderInjection {
                field: "List-Id",
                ..
            })
        ));
    }

    #[test]
    fn encoded_words_stay_short() {
        let words = encoded_words(&"Früh ".repeat(30));
        for line in words.split("\r\n") {
            assert!(line.trim().len() <= 75, "{line}");
        }
    }

    #[test]
    fn unsubscribe_value_forms() {
        assert_eq!(
            list_unsubscribe_value("https://x.example/u?t=1", Some("unsub@x.example")).unwrap(),
            "<https://x.example/u?t=1>, <mailto:unsub@x.example?subject=unsubscribe>"
        );
        assert_eq!(
            list_unsubscribe_value(
                "https://x.example/u",
                Some("mailto:u@x.example?subject=stop")
            )
            .unwrap(),
            "<https://x.example/u>, <mailto:u@x.example?subject=stop>"
        );
        assert!(list_unsubscribe_value("http://x.example/u", None).is_err());
        assert!(list_unsubscribe_value("https://x.example/u>, <https://evil", None).is_err());
        assert!(list_unsubscribe_value("https://x.example/u", Some("nobody")).is_err());
    }
}
