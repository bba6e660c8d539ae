//! SMTP replies: the incremental parser (RFC 5321 4.2: multi-line replies,
//! RFC 3463 enhanced status codes, EHLO keywords) and what a reply or a
//! broken session means for a delivery (`SmtpFailure`). Pure: no I/O here,
//! so every server quirk can be tested with a byte string.

use std::fmt;

use thiserror::Error;

/// Longest reply line accepted, CRLF included. RFC 5321 4.5.3.1.5 allows 512
/// octets; real servers send longer texts, so there is slack, but a server
/// streaming one endless line must not grow our buffer without bound.
pub const MAX_LINE: usize = 4096;
/// Most lines in one reply (an EHLO reply lists one extension a line).
pub const MAX_LINES: usize = 128;

/// One complete reply: `250 2.0.0 Ok: queued as 4ZxY`, or several lines
/// with the same code (`250-…` continuation lines, then `250 …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// The RFC 3463 status of the first line, when the server gives one.
    pub enhanced: Option<EnhancedStatus>,
    /// Each line's text after the code and its separator, in order.
    pub lines: Vec<String>,
}

/// `class.subject.detail`, e.g. 5.1.1 (bad mailbox) or 4.7.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnhancedStatus {
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl fmt::Display for EnhancedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// What kind of answer a reply is (its first digit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyClass {
    /// 2xx: done.
    Positive,
    /// 3xx: go on (354 after DATA, 334 during AUTH).
    Intermediate,
    /// 4xx: not now; the same command may work later.
    Transient,
    /// 5xx: never, as sent.
    Permanent,
}

impl Reply {
    pub fn class(&self) -> ReplyClass {
        match self.code / 100 {
            2 => ReplyClass::Positive,
            3 => ReplyClass::Intermediate,
            4 => ReplyClass::Transient,
            // The parser only makes codes 200..=599.
            _ => ReplyClass::Permanent,
        }
    }

    pub fn is_positive(&self) -> bool {
        self.class() == ReplyClass::Positive
    }

    /// The extension keywords of an EHLO reply (every line after the first).
    pub fn capabilities(&self) -> Capabilities {
        Capabilities::from_ehlo(self)
    }
}

impl fmt::Display for Reply {
    /// The code and every line's text on one line, as the ledger keeps it:
    /// `450 4.3.0 Error: command failed`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        for line in self.lines.iter().filter(|l| !l.is_empty()) {
            write!(f, " {line}")?;
        }
        Ok(())
    }
}

/// Why bytes from the server are not a reply.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReplyError {
    #[error("the server sent something that is not an SMTP reply: {0:?}")]
    Garbage(String),
    #[error("the server's reply mixes codes {first} and {then}")]
    MixedCodes { first: u16, then: u16 },
    #[error("the server's reply has a line longer than {MAX_LINE} bytes")]
    LineTooLong,
    #[error("the server's reply has more than {MAX_LINES} lines")]
    TooManyLines,
}

/// Parses one reply from the start of `buf`. `Ok(None)`: not complete yet,
/// read more. `Ok(Some((reply, used)))`: `used` bytes made the reply (what
/// follows belongs to the next one, as with pipelined commands). Lines end
/// in CRLF; a bare LF is accepted too. Never panics, whatever `buf` holds.
pub fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, ReplyError> {
    let mut start = 0;
    let mut code = None;
    let mut lines = Vec::new();
    loop {
        let rest = &buf[start..];
        let Some(newline) = memchr::memchr(b'\n', rest) else {
            if rest.len() >= MAX_LINE {
                return Err(ReplyError::LineTooLong);
            }
            // Fail early on a partial line that can never become a reply.
            check_prefix(rest)?;
            return Ok(None);
        };
        if newline + 1 > MAX_LINE {
            return Err(ReplyError::LineTooLong);
        }
        let raw = &rest[..newline];
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        start += newline + 1;
        let (this, last, text) = split_line(line)?;
        match code {
            None => code = Some(this),
            Some(first) if first != this => {
                return Err(ReplyError::MixedCodes { first, then: this });
            }
            Some(_) => {}
        }
        if lines.len() == MAX_LINES {
            return Err(ReplyError::TooManyLines);
        }
        lines.push(text);
        if last {
            let code = this;
            let enhanced = lines.first().and_then(|l| enhanced_status(code, l));
            return Ok(Some((
                Reply {
                    code,
                    enhanced,
                    lines,
                },
                start,
            )));
        }
    }
}

/// `(code, is_last_line, text)` of one line without its line end.
fn split_line(line: &[u8]) -> Result<(u16, bool, String), ReplyError> {
    let garbage = || ReplyError::Garbage(String::from_utf8_lossy(line).chars().take(80).collect());
    let code = match line {
        [a @ b'2'..=b'5', b @ b'0'..=b'9', c @ b'0'..=b'9', ..] => {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => return Err(garbage()),
    };
    let (last, text) = match &line[3..] {
        [] => (true, &[][..]),
        [b' ', text @ ..] => (true, text),
        [b'-', text @ ..] => (false, text),
        _ => return Err(garbage()),
    };
    Ok((
        code,
        last,
        String::from_utf8_lossy(text).trim_end().to_owned(),
    ))
}

/// Whether an incomplete line could still start a reply line.
fn check_prefix(partial: &[u8]) -> Result<(), ReplyError> {
    let ok = partial.iter().take(4).enumerate().all(|(i, b)| match i {
        0 => (b'2'..=b'5').contains(b),
        1 | 2 => b.is_ascii_digit(),
        _ => matches!(b, b' ' | b'-' | b'\r'),
    });
    if ok {
        Ok(())
    } else {
        Err(ReplyError::Garbage(
            String::from_utf8_lossy(partial).chars().take(80).collect(),
        ))
    }
}

/// RFC 3463 status at the start of a reply text, when its class agrees with
/// the reply code (a `250 4.0.0` is a server bug: ignore the status).
fn enhanced_status(code: u16, text: &str) -> Option<EnhancedStatus> {
    let token = text.split_ascii_whitespace().next()?;
    let mut parts = token.split('.');
    let class: u8 = number(parts.next()?, 1)?;
    let subject: u16 = number(parts.next()?, 3)?;
    let detail: u16 = number(parts.next()?, 3)?;
    if parts.next().is_some() || u16::from(class) != code / 100 {
        return None;
    }
    Some(EnhancedStatus {
        class,
        subject,
        detail,
    })
}

fn number<T: std::str::FromStr>(digits: &str, max_len: usize) -> Option<T> {
    if digits.is_empty() || digits.len() > max_len || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The extensions an EHLO reply announces, as far as briefing uses them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// RFC 2920: MAIL, RCPT and DATA may go in one write.
    pub pipelining: bool,
    pub starttls: bool,
    /// RFC 6152: 8-bit message bodies.
    pub eight_bit_mime: bool,
    /// RFC 6531: non-ASCII addresses.
    pub smtp_utf8: bool,
    /// SASL mechanisms, upper case.
    pub auth: Vec<String>,
    /// RFC 1870: the largest message the server takes, in bytes; `Some(0)`
    /// when it offers SIZE with no fixed limit, `None` without SIZE.
    pub size: Option<u64>,
}

impl Capabilities {
    pub fn from_ehlo(reply: &Reply) -> Capabilities {
        let mut caps = Capabilities::default();
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let Some(first) = words.next() else {
                continue;
            };
            // Old servers write `AUTH=LOGIN PLAIN`.
            let (keyword, inline) = match first.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (first, None),
            };
            match keyword.to_ascii_uppercase().as_str() {
                "PIPELINING" => caps.pipelining = true,
                "STARTTLS" => caps.starttls = true,
                "8BITMIME" => caps.eight_bit_mime = true,
                "SMTPUTF8" => caps.smtp_utf8 = true,
                // A limit that does not parse is no limit we can honour.
                "SIZE" => caps.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
                "AUTH" => {
                    for mechanism in inline.into_iter().chain(words) {
                        let mechanism = mechanism.to_ascii_uppercase();
                        if !mechanism.is_empty() && !caps.auth.contains(&mechanism) {
                            caps.auth.push(mechanism);
                        }
                    }
                }
                _ => {}
            }
        }
        caps
    }

    pub fn offers_auth(&self, mechanism: &str) -> bool {
        self.auth.iter().any(|m| m.eq_ignore_ascii_case(mechanism))
    }
}

/// Why one SMTP transaction did not deliver, classified for the sender.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SmtpFailure {
    /// The server answered with a 4xx or 5xx reply.
    #[error("{reply}")]
    Rejected { code: u16, reply: String },
    /// The session broke before the message was complete on the wire:
    /// network error, timeout, protocol error, or the server hung up. The
    /// relay cannot have accepted the message, so it is safe to retry;
    /// the session must not be reused.
    #[error("{0}")]
    Connection(String),
    /// The whole message and its final dot were written, and then the reply
    /// never came (connection lost, timeout, garbage). The relay may well
    /// have accepted it: retrying now could deliver a second copy, so the
    /// sender records it `in_doubt` instead (see `crate::ledger`).
    #[error("{0}")]
    InDoubt(String),
    /// This message cannot go through this server at all (e.g. 8-bit content
    /// and no 8BITMIME). Permanent for the message, the session is fine.
    #[error("{0}")]
    Unsendable(String),
    /// The relay refuses us, not the recipient: authentication or TLS
    /// failed, STARTTLS is missing, the greeting or `MAIL FROM` got a 5xx.
    /// Retrying recipients cannot help and failing them would be wrong, so
    /// the send stops and leaves them pending.
    #[error("{0}")]
    Fatal(String),
}

/// Replies by which providers say "slow down" (or "too busy now").
const THROTTLE_CODES: [u16; 5] = [421, 450, 451, 452, 454];

impl SmtpFailure {
    /// The failure a 4xx or 5xx reply stands for.
    pub fn rejected(reply: &Reply) -> SmtpFailure {
        SmtpFailure::Rejected {
            code: reply.code,
            reply: reply.to_string(),
        }
    }

    /// Never worth retrying: 5xx replies and unsendable messages.
    pub fn is_permanent(&self) -> bool {
        match self {
            SmtpFailure::Rejected { code, .. } => (500..600).contains(code),
            SmtpFailure::Unsendable(_) => true,
            SmtpFailure::Connection(_) | SmtpFailure::InDoubt(_) | SmtpFailure::Fatal(_) => false,
        }
    }

    /// The sender halves its rate on these instead of burning through
    /// recipients.
    pub fn is_throttle(&self) -> bool {
        matches!(self, SmtpFailure::Rejected { code, .. } if THROTTLE_CODES.contains(code))
    }

    /// Whether the session can carry another transaction after this.
    pub fn keeps_session(&self) -> bool {
        match self {
            // 421: the server is closing the connection (RFC 5321 3.8).
            SmtpFailure::Rejected { code, .. } => *code != 421,
            SmtpFailure::Unsendable(_) => true,
            SmtpFailure::Connection(_) | SmtpFailure::InDoubt(_) | SmtpFailure::Fatal(_) => false,
        }
    }

    /// A configuration problem (ours), not a condition of the moment.
    pub fn is_fatal(&self) -> bool {
        matches!(self, SmtpFailure::Fatal(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one(bytes: &[u8]) -> Reply {
        let (reply, used) = parse(bytes).unwrap().expect("complete");
        assert_eq!(used, bytes.len());
        reply
    }

    #[test]
    fn parses_single_and_multi_line_replies() {
        let r = one(b"250 2.0.0 Ok: queued as 4ZxY\r\n");
        assert_eq!(r.code, 250);
        assert_eq!(r.lines, ["2.0.0 Ok: queued as 4ZxY"]);
        assert_eq!(r.to_string(), "250 2.0.0 Ok: queued as 4ZxY");
        assert_eq!(r.class(), ReplyClass::Positive);

        let r = one(b"250-mx.example.com\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
        assert_eq!(r.lines, ["mx.example.com", "PIPELINING", "8BITMIME"]);
        assert_eq!(r.to_string(), "250 mx.example.com PIPELINING 8BITMIME");

        // A bare code, a bare LF, trailing blanks.
        let r = one(b"354\n");
        assert_eq!((r.code, r.class()), (354, ReplyClass::Intermediate));
        assert_eq!(r.to_string(), "354");
        assert_eq!(one(b"221 Bye  \r\n").to_string(), "221 Bye");
    }

    #[test]
    fn incomplete_replies_ask_for_more() {
        for partial in [
            &b""[..],
            b"2",
            b"25",
            b"250",
            b"250-first\r\n",
            b"250-first\r\n250 last",
            b"250 no line end yet",
        ] {
            assert_eq!(parse(partial), Ok(None), "{partial:?}");
        }
    }

    #[test]
    fn leaves_the_next_reply_in_the_buffer() {
        let buf = b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go ahead\r\n";
        let (first, used) = parse(buf).unwrap().unwrap();
        assert_eq!(first.to_string(), "250 2.1.0 Ok");
        let (second, more) = parse(&buf[used..]).unwrap().unwrap();
        assert_eq!(second.to_string(), "250 2.1.5 Ok");
        let (third, _) = parse(&buf[used + more..]).unwrap().unwrap();
        assert_eq!(third.code, 354);
    }

    #[test]
    fn reads_enhanced_status_codes() {
        let r = one(b"550 5.1.1 <x@example.org>: Recipient address rejected\r\n");
        assert_eq!(
            r.enhanced,
            Some(EnhancedStatus {
                class: 5,
                subject: 1,
                detail: 1
            })
        );
        assert_eq!(r.enhanced.unwrap().to_string(), "5.1.1");
        let r = one(b"451 4.7.650 The mail server [1.2.3.4] has been temporarily rate limited\r\n");
        assert_eq!(r.enhanced.map(|e| e.detail), Some(650));
        // No status, a class that disagrees with the code, junk that looks close.
        for text in [
            &b"250 Ok\r\n"[..],
            b"250 4.0.0 odd\r\n",
            b"550 5.1 short\r\n",
            b"550 5.1.1.1 long\r\n",
            b"550 5.1000.1 wide\r\n",
            b"550 a.b.c letters\r\n",
        ] {
            assert_eq!(one(text).enhanced, None, "{text:?}");
        }
    }

    #[test]
    fn refuses_garbage_without_panicking() {
        for junk in [
            &b"hello\r\n"[..],
            b"HTTP/1.1 400 Bad Request\r\n",
            b"25x ok\r\n",
            b"250xok\r\n",
            b"650 six hundred\r\n",
            b"150 one\r\n",
            b"\r\n",
            b"-\r\n",
            b"\xff\xfe\xfd\r\n",
        ] {
            assert!(
                matches!(parse(junk), Err(ReplyError::Garbage(_))),
                "{junk:?}: {:?}",
                parse(junk)
            );
        }
        // Caught before the line ends: nothing would make it a reply.
        assert!(matches!(parse(b"SSH-2.0"), Err(ReplyError::Garbage(_))));
        assert_eq!(
            parse(b"250-one\r\n251 two\r\n"),
            Err(ReplyError::MixedCodes {
                first: 250,
                then: 251
            })
        );
    }

    #[test]
    fn bounds_line_length_and_count() {
        let mut long = b"250 ".to_vec();
        long.extend(std::iter::repeat_n(b'x', MAX_LINE));
        assert_eq!(parse(&long), Err(ReplyError::LineTooLong));
        long.extend_from_slice(b"\r\n");
        assert_eq!(parse(&long), Err(ReplyError::LineTooLong));
        let many = b"250-x\r\n".repeat(MAX_LINES + 1);
        assert_eq!(parse(&many), Err(ReplyError::TooManyLines));
        // Non-UTF-8 text is kept, lossily.
        let r = one(b"250 caf\xe9\r\n");
        assert_eq!(r.lines, ["caf\u{fffd}"]);
    }

    #[test]
    fn reads_ehlo_capabilities() {
        let r = one(
            b"250-mx.example.com Hello\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n\
              250-auth=login\r\n250-AUTH PLAIN LOGIN CRAM-MD5\r\n250-STARTTLS\r\n\
              250-8BITMIME\r\n250 SMTPUTF8\r\n",
        );
        let caps = r.capabilities();
        assert!(caps.pipelining && caps.starttls && caps.eight_bit_mime && caps.smtp_utf8);
        assert_eq!(caps.auth, ["LOGIN", "PLAIN", "CRAM-MD5"]);
        assert!(caps.offers_auth("plain"));
        // The greeting line is not a keyword; a bare 250 offers nothing.
        let caps = one(b"250-PIPELINING greets you\r\n250 HELP\r\n").capabilities();
        assert_eq!(caps, Capabilities::default());
        assert_eq!(one(b"250\r\n").capabilities(), Capabilities::default());
    }

    #[test]
    fn classifies_failures() {
        let r = |code| SmtpFailure::Rejected {
            code,
            reply: String::new(),
        };
        assert!(r(550).is_permanent() && !r(550).is_throttle() && r(550).keeps_session());
        assert!(!r(450).is_permanent() && r(450).is_throttle());
        assert!(r(421).is_throttle() && !r(421).keeps_session());
        assert!(r(451).is_throttle() && r(454).is_throttle());
        assert!(!r(441).is_throttle());
        let broken = SmtpFailure::Connection("x".into());
        assert!(!broken.is_permanent() && !broken.keeps_session() && !broken.is_fatal());
        let doubt = SmtpFailure::InDoubt("x".into());
        assert!(!doubt.is_permanent() && !doubt.keeps_session() && !doubt.is_throttle());
        assert!(SmtpFailure::Fatal("x".into()).is_fatal());
        assert!(SmtpFailure::Unsendable("x".into()).is_permanent());
        let reply = one(b"550 5.7.1 go away\r\n");
        assert_eq!(
            SmtpFailure::rejected(&reply),
            SmtpFailure::Rejected {
                code: 550,
                reply: "550 5.7.1 go away".into()
            }
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever a server sends, the parser answers without panicking,
        /// never claims more bytes than it was given, and never keeps
        /// asking for more once a line is over the limit.
        #[test]
        fn never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            match parse(&bytes) {
                Ok(Some((reply, used))) => {
                    prop_assert!(used <= bytes.len());
                    prop_assert!((200..600).contains(&reply.code));
                    prop_assert!(!reply.lines.is_empty());
                }
                Ok(None) => prop_assert!(bytes.len() < MAX_LINE * MAX_LINES),
                Err(_) => {}
            }
        }

        /// Near-replies: real codes and separators mixed with noise.
        #[test]
        fn never_panics_on_reply_like_input(
            parts in proptest::collection::vec(
                (200u16..600, prop_oneof![Just(" "), Just("-"), Just(""), Just("x")],
                 "[ -~\\r\\n\u{e9}]{0,40}", prop_oneof![Just("\r\n"), Just("\n"), Just("")]),
                0..8,
            )
        ) {
            let text: String = parts
                .iter()
                .map(|(code, sep, body, end)| format!("{code}{sep}{body}{end}"))
                .collect();
            let _ = parse(text.as_bytes());
        }

        /// A well-formed reply comes back as written, split anywhere.
        #[test]
        fn round_trips_well_formed_replies(
            code in 200u16..600,
            texts in proptest::collection::vec("[!-~][ -~]{0,60}", 1..6),
            split in 0usize..400,
        ) {
            let mut wire = String::new();
            for (i, text) in texts.iter().enumerate() {
                let sep = if i + 1 == texts.len() { ' ' } else { '-' };
                wire.push_str(&format!("{code}{sep}{text}\r\n"));
            }
            let bytes = wire.as_bytes();
            let cut = split.min(bytes.len());
            if cut < bytes.len() {
                prop_assert_eq!(parse(&bytes[..cut]), Ok(None));
            }
            let (reply, used) = parse(bytes).unwrap().unwrap();
            prop_assert_eq!(used, bytes.len());
            prop_assert_eq!(reply.code, code);
            let trimmed: Vec<String> = texts.iter().map(|t| t.trim_end().to_owned()).collect();
            prop_assert_eq!(reply.lines, trimmed);
        }
    }
}
