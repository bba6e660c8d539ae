//! What a failed delivery means for the subscriber: RFC 3463 status codes and
//! the wording of real MTAs' replies, reduced to hard (the address is dead),
//! soft (try again, count it), policy (our relay or our mail was refused).

/// The meaning of one failed delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The mailbox or its domain does not exist: suppress the address.
    Hard,
    /// Mailbox full, disabled, temporarily unavailable: count it; the address
    /// is suppressed only after repeated soft bounces.
    Soft,
    /// Refused for policy or reputation (5.7.x, spam filters, blocklists,
    /// authentication, relaying): the sender's problem, never the
    /// subscriber's. Report it as a relay problem; suppress nobody.
    Policy,
    /// A permanent failure that says nothing more (a bare 5.0.0, a protocol
    /// error). Counted like a soft bounce: repeated failures still end in
    /// suppression, but one unexplained 5xx does not.
    Unknown,
}

/// An RFC 3463 enhanced status code `class.subject.detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code {
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl Code {
    /// `"5.1.1"`, also inside text (`"550 5.1.1 <a@b>: …"`, `"(#5.1.1)"`):
    /// the first well-formed code whose class is 2, 4 or 5.
    pub fn find(text: &str) -> Option<Code> {
        let b = text.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if matches!(b[i], b'2' | b'4' | b'5')
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'.'))
                && let Some((code, len)) = parse_at(&b[i..])
            {
                let end = i + len;
                if end == b.len() || !(b[end].is_ascii_alphanumeric() || b[end] == b'.') {
                    return Some(code);
                }
            }
            i += 1;
        }
        None
    }

    pub fn parse(s: &str) -> Option<Code> {
        let (code, len) = parse_at(s.trim().as_bytes())?;
        (len == s.trim().len()).then_some(code)
    }

    fn generic(self) -> bool {
        self.subject == 0 && self.detail == 0
    }

    fn is(self, subject: u16, detail: u16) -> bool {
        self.subject == subject && self.detail == detail
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// `d.ddd.ddd` at the start of `b`: the code and its length.
fn parse_at(b: &[u8]) -> Option<(Code, usize)> {
    let class = match b.first()? {
        c @ (b'2' | b'4' | b'5') => c - b'0',
        _ => return None,
    };
    if b.get(1) != Some(&b'.') {
        return None;
    }
    let (subject, n1) = number(&b[2..])?;
    if b.get(2 + n1) != Some(&b'.') {
        return None;
    }
    let (detail, n2) = number(&b[3 + n1..])?;
    Some((
        Code {
            class,
            subject,
            detail,
        },
        3 + n1 + n2,
    ))
}

fn number(b: &[u8]) -> Option<(u16, usize)> {
    let n = b.iter().take(4).take_while(|c| c.is_ascii_digit()).count();
    if n == 0 || n > 3 {
        return None;
    }
    let mut v: u16 = 0;
    for &c in &b[..n] {
        v = v * 10 + u16::from(c - b'0');
    }
    Some((v, n))
}

/// The basic SMTP reply code in a diagnostic (`"smtp; 550 …"`, `"550-…"`,
/// `"#550 5.1.1 …"`, `"Remote host said: 554 …"`): the first three-digit
/// number from 200 to 599 that stands alone.
pub fn reply_code(text: &str) -> Option<u16> {
    let b = text.as_bytes();
    let mut i = 0;
    while i + 3 <= b.len() {
        let starts = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'.');
        if starts
            && matches!(b[i], b'2' | b'4' | b'5')
            && b[i + 1].is_ascii_digit()
            && b[i + 2].is_ascii_digit()
            && match b.get(i + 3) {
                None | Some(b' ' | b'-' | b'\t') => true,
                // Yahoo writes "554: delivery error"; "12:550:00" is a time.
                Some(b':') => b.get(i + 4).is_none_or(|c| *c == b' '),
                _ => false,
            }
        {
            return Some(
                u16::from(b[i] - b'0') * 100
                    + u16::from(b[i + 1] - b'0') * 10
                    + u16::from(b[i + 2] - b'0'),
            );
        }
        i += 1;
    }
    None
}

/// The code to judge a failure by: the reported `Status`, unless it is only
/// `X.0.0` (or missing) and the remote server's own reply says more. Exim,
/// for one, reports `Status: 5.0.0` for every failure, including a
/// `550 5.1.1` and a `450 4.3.0` that timed out.
pub fn effective(status: Option<&str>, diagnostic: &str) -> Option<Code> {
    let reported = status.and_then(Code::find);
    if let Some(code) = reported
        && !code.generic()
    {
        return Some(code);
    }
    if let Some(code) = Code::find(diagnostic) {
        return Some(code);
    }
    if let Some(basic) = reply_code(diagnostic) {
        let class = (basic / 100) as u8;
        if reported.is_none_or(|r| r.class != class) {
            return Some(Code {
                class,
                subject: 0,
                detail: 0,
            });
        }
    }
    reported
}

/// Classifies one *failed* delivery from its status code (if any) and the
/// diagnostic text (the remote server's reply, or a bounce's own words).
pub fn classify(status: Option<&str>, diagnostic: &str) -> Class {
    let code = effective(status, diagnostic);
    let text = diagnostic.to_lowercase();
    classify_code(code, &text)
}

/// Classifies a synchronous rejection during our own SMTP session (a `550`
/// to `RCPT`), so that it can be recorded like the bounce it is.
pub fn classify_reply(code: u16, text: &str) -> Class {
    let status = Code::find(text).or(Some(Code {
        class: (code / 100).min(9) as u8,
        subject: 0,
        detail: 0,
    }));
    classify_code(status, &text.to_lowercase())
}

fn classify_code(code: Option<Code>, text: &str) -> Class {
    let full = code.is_some_and(|c| c.is(2, 2)) || any(text, FULL);
    if full {
        return Class::Soft;
    }
    let user_unknown = any(text, UNKNOWN) || office365_access_denied(code, text);
    let policy = any(text, POLICY) || any_word(text, POLICY_WORDS);
    let Some(code) = code else {
        // A bounce in words only (qmail, old Exim, a provider's own text).
        return if user_unknown {
            Class::Hard
        } else if policy {
            Class::Policy
        } else if any(text, DISABLED) || any(text, TEMPORARY) {
            Class::Soft
        } else {
            Class::Unknown
        };
    };
    match code.class {
        4 if code.subject == 7 || policy => Class::Policy,
        4 => Class::Soft,
        5 => {
            // The sender's own address or system refused: ours to fix.
            if code.subject == 1 && matches!(code.detail, 7 | 8) {
                return Class::Policy;
            }
            if (code.subject == 7 || code.subject == 6 || policy) && !user_unknown {
                return Class::Policy;
            }
            let hard_code =
                (code.subject == 1 && matches!(code.detail, 1 | 2 | 3 | 6 | 10)) || code.is(4, 4);
            if hard_code || user_unknown {
                return Class::Hard;
            }
            if any(text, DISABLED) || any(text, TEMPORARY) {
                return Class::Soft;
            }
            match code.subject {
                2..=4 => Class::Soft,
                _ => Class::Unknown,
            }
        }
        _ => Class::Unknown,
    }
}

/// Office 365's directory-based edge blocking answers `550 5.4.1 Recipient
/// address rejected: Access denied` for an address that does not exist in
/// the tenant (Microsoft's NDR reference for 5.4.1). The same words with a
/// 5.7.x code are a real policy refusal.
fn office365_access_denied(code: Option<Code>, text: &str) -> bool {
    code.is_some_and(|c| c.class == 5 && c.is(4, 1))
        && text.contains("recipient address rejected: access denied")
}

fn any(text: &str, needles: &[&str]) -> bool {
    needles.iter().any(|n| text.contains(n))
}

/// Short tokens that must stand alone ("rbl" inside a longer word is not a
/// blocklist).
fn any_word(text: &str, words: &[&str]) -> bool {
    words.iter().any(|w| {
        text.match_indices(w).any(|(i, _)| {
            let before = text[..i].chars().next_back();
            let after = text[i + w.len()..].chars().next();
            !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
        })
    })
}

/// The mailbox or its domain does not exist, in the words real servers use.
const UNKNOWN: &[&str] = &[
    "user unknown",
    "unknown user",
    "no such user",
    "user not found",
    "user does not exist",
    "user doesn't exist",
    "no such recipient",
    "recipient not found",
    "recipient unknown",
    "unknown recipient",
    "no such mailbox",
    "mailbox not found",
    "mailbox does not exist",
    "mailbox doesn't exist",
    "mailbox is not found",
    "no mailbox here",
    "invalid mailbox",
    "invalid recipient",
    "not a valid mailbox",
    "unknown address",
    "address unknown",
    "addressee unknown",
    "no such address",
    "address does not exist",
    "address doesn't exist",
    "account does not exist",
    "account doesn't exist",
    "account that you tried to reach does not exist",
    "doesn't have a yahoo",
    "doesn't have an account",
    "unknown or illegal alias",
    "unrouteable address",
    "unroutable address",
    "bad destination mailbox",
    "recipnotfound",
    "recipientnotfound",
    "resolver.adr.recip",
    "no such domain",
    "domain not found",
    "domain does not exist",
    "host or domain name not found",
    "unknown domain",
    "nxdomain",
    "nullmx",
    "null mx",
    "address couldn't be found",
    "wasn't found at",
];

/// The mailbox exists but cannot take mail now.
const FULL: &[&str] = &[
    "mailbox full",
    "mailbox is full",
    "full mailbox",
    "inbox is full",
    "inbox full",
    "mailfolder is full",
    "over quota",
    "overquota",
    "quota exceeded",
    "exceeded storage",
    "exceeds the storage",
    "insufficient storage",
    "out of storage",
    "storage allocation",
    "mailbox size limit",
    "mail quota",
];

/// Accounts switched off: often for good, but not always (Yahoo and Gmail
/// reactivate), so they count as soft and end suppressed after repeats.
const DISABLED: &[&str] = &[
    "disabled",
    "deactivated",
    "inactive",
    "suspended",
    "account is locked",
];

const TEMPORARY: &[&str] = &[
    "try again later",
    "try later",
    "temporarily",
    "temporary",
    "retry timeout exceeded",
];

/// Refusals for policy or reputation, which say nothing about the address.
const POLICY: &[&str] = &[
    "spam",
    "unsolicited",
    "blocklist",
    "block list",
    "blacklist",
    "black list",
    "blocked",
    "spamhaus",
    "spamcop",
    "barracuda",
    "reputation",
    "policy",
    "unauthenticated",
    "not authenticated",
    "authentication",
    "bulk mail",
    "rate limit",
    "rate-limit",
    "ratelimit",
    "too many",
    "throttl",
    "complaint",
    "phish",
    "virus",
    "malware",
    "content rejected",
    "message rejected",
    "relay access denied",
    "relaying denied",
    "unable to relay",
    "relay not permitted",
    "not permitted to relay",
    "access denied",
    "is listed",
    "listed at",
    "listed on",
    "banned",
    "suspicious",
    "prohibited",
];

const POLICY_WORDS: &[&str] = &[
    "rbl", "dnsbl", "spf", "dkim", "dmarc", "junk", "tss04", "ts01", "ts02",
];

#[cfg(test)]
mod tests {
    use super::*;
    use Class::*;

    #[test]
    fn finds_enhanced_codes_in_text() {
        let c = |s: &str| Code::find(s).map(|c| c.to_string());
        assert_eq!(
            c("smtp; 550 5.1.1 <a@b>: User unknown").as_deref(),
            Some("5.1.1")
        );
        assert_eq!(
            c("Sorry, no mailbox here (#5.1.1)").as_deref(),
            Some("5.1.1")
        );
        assert_eq!(c("550-5.1.10 RESOLVER").as_deref(), Some("5.1.10"));
        assert_eq!(c("5.2.2 (mailbox full)").as_deref(), Some("5.2.2"));
        // Version numbers and addresses are not codes.
        assert_eq!(c("Exim 4.96 at 10.5.1.1"), None);
        assert_eq!(c("v5.1.1"), None);
        assert_eq!(c("5.1"), None);
        assert_eq!(c("3.1.1"), None);
        assert_eq!(c("5.1.1.2"), None);
        assert_eq!(
            Code::parse(" 4.2.2 ").map(|c| c.to_string()).as_deref(),
            Some("4.2.2")
        );
        assert_eq!(Code::parse("4.2.2 x"), None);
    }

    #[test]
    fn finds_basic_reply_codes() {
        assert_eq!(
            reply_code("smtp; 550 Requested action not taken"),
            Some(550)
        );
        assert_eq!(reply_code("550-5.7.1 [1.2.3.4] blocked"), Some(550));
        assert_eq!(reply_code("#550 5.1.1 RESOLVER ##"), Some(550));
        assert_eq!(reply_code("552"), Some(552));
        assert_eq!(reply_code("554: delivery error: dd"), Some(554));
        assert_eq!(reply_code("queue id 5501 at 12:550:00"), None);
        assert_eq!(reply_code("no code here"), None);
    }

    #[test]
    fn exim_reports_5_0_0_and_the_reply_tells_the_truth() {
        assert_eq!(
            effective(
                Some("5.0.0"),
                "smtp; 450 4.3.0 Error: command failed: retry timeout exceeded"
            )
            .map(|c| c.to_string())
            .as_deref(),
            Some("4.3.0")
        );
        assert_eq!(
            classify(
                Some("5.0.0"),
                "smtp; 450 4.3.0 Error: command failed: retry timeout exceeded"
            ),
            Soft
        );
        assert_eq!(
            classify(
                Some("5.0.0"),
                "smtp; 550 5.1.1 <ben@unknown.example>: Recipient address rejected: User unknown in relay recipient table"
            ),
            Hard
        );
        // A basic code of another class than the status also wins.
        assert_eq!(classify(Some("5.0.0"), "smtp; 421 try again"), Soft);
        // A specific status is kept even when the text disagrees.
        assert_eq!(classify(Some("5.1.1"), "smtp; 450 4.2.0 whatever"), Hard);
    }

    #[test]
    fn hard_bounces() {
        for (status, text) in [
            (
                Some("5.1.1"),
                "smtp; 550 5.1.1 <a@b>: Recipient address rejected: User unknown in virtual mailbox table",
            ),
            (Some("5.1.1"), "X-Postfix; unknown user: \"nosuchuser\""),
            (
                Some("5.1.2"),
                "X-Postfix; Host or domain name not found. Name service error for name=nx.example type=A: Host not found",
            ),
            (Some("5.4.4"), "X-Postfix; Host or domain name not found"),
            (
                Some("5.1.10"),
                "smtp; 550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
            ),
            (Some("5.1.0"), "smtp; 550 5.1.0 <a@b>: user unknown"),
            (
                Some("5.0.0"),
                "smtp; 550 Requested action not taken: mailbox unavailable, user unknown",
            ),
            (None, "Sorry, no mailbox here by that name. (#5.1.1)"),
            (
                None,
                "554 delivery error: dd This user doesn't have a yahoo.com account (x@yahoo.com) [0]",
            ),
            (
                Some("5.4.1"),
                "smtp; 550 5.4.1 Recipient address rejected: Access denied. AS(201806281)",
            ),
            (
                Some("5.1.10"),
                "smtp; 556 5.1.10 Recipient address has null MX",
            ),
            (None, "Unrouteable address"),
            (
                Some("5.0.0"),
                "smtp; 550-5.1.1 The email account that you tried to reach does not exist. Please try 550-5.1.1 double-checking the recipient's email address",
            ),
        ] {
            assert_eq!(classify(status, text), Hard, "{status:?} {text}");
        }
    }

    #[test]
    fn mailbox_full_is_soft_even_with_a_5() {
        for (status, text) in [
            (
                Some("5.2.2"),
                "smtp; 552 5.2.2 <c@full.example>: Recipient address rejected: Mailbox full",
            ),
            (
                Some("4.2.2"),
                "smtp; 452 4.2.2 The email account that you tried to reach is over quota",
            ),
            (
                Some("5.0.0"),
                "smtp; 552 5.2.2 Mailbox full: quota exceeded",
            ),
            (Some("5.1.1"), "smtp; 550 5.1.1 user over quota"),
            (None, "mailbox is full"),
        ] {
            assert_eq!(classify(status, text), Soft, "{status:?} {text}");
        }
    }

    #[test]
    fn temporary_and_disabled_are_soft() {
        for (status, text) in [
            (Some("4.3.0"), "smtp; 450 4.3.0 Error: command failed"),
            (
                Some("4.4.1"),
                "connect to mx.example[192.0.2.1]:25: Connection refused",
            ),
            (
                Some("5.2.1"),
                "smtp; 550 5.2.1 The email account that you tried to reach is disabled",
            ),
            (Some("5.3.0"), "smtp; 500 5.3.0 Error: command failed"),
            (
                None,
                "554 delivery error: dd Sorry your message to x cannot be delivered. This mailbox is disabled (554.30)",
            ),
            (Some("5.0.0"), "smtp; 550 mailbox temporarily unavailable"),
        ] {
            assert_eq!(classify(status, text), Soft, "{status:?} {text}");
        }
    }

    #[test]
    fn policy_blocks_are_never_the_subscribers_fault() {
        for (status, text) in [
            (
                Some("5.7.1"),
                "smtp; 550-5.7.1 [192.0.2.10] Our system has detected that this message is likely unsolicited mail",
            ),
            (
                Some("5.7.1"),
                "smtp; 554 5.7.1 Service unavailable; Client host [192.0.2.10] blocked using zen.spamhaus.org",
            ),
            (
                Some("5.0.0"),
                "smtp; 554 5.7.1 <d@blocked.example>: Recipient address rejected: Service unavailable",
            ),
            (
                Some("5.7.26"),
                "smtp; 550 5.7.26 This mail has been blocked because the sender is unauthenticated",
            ),
            (
                Some("4.7.0"),
                "smtp; 421 4.7.0 [TSS04] Messages from 192.0.2.10 temporarily deferred due to unexpected volume or user complaints",
            ),
            (
                Some("4.7.28"),
                "smtp; 421-4.7.28 Our system has detected an unusual rate of unsolicited mail",
            ),
            (
                Some("5.0.0"),
                "smtp; 554 Message rejected: listed at bl.example",
            ),
            (Some("5.0.0"), "smtp; 550 rejected by RBL"),
            (Some("5.6.0"), "smtp; 554 5.6.0 content not accepted"),
            (
                Some("5.1.8"),
                "smtp; 550 5.1.8 Access denied, bad outbound sender",
            ),
            (Some("5.0.0"), "smtp; 554 5.0.0 Relay access denied"),
            (None, "Your message was blocked because it looks like spam"),
            (
                Some("5.7.1"),
                "smtp; 550 5.7.1 Recipient address rejected: Access denied",
            ),
        ] {
            assert_eq!(classify(status, text), Policy, "{status:?} {text}");
        }
    }

    #[test]
    fn unexplained_permanent_failures_are_unknown() {
        assert_eq!(
            classify(
                Some("5.0.0"),
                "smtp; 550 Requested action not taken: mailbox unavailable"
            ),
            Unknown
        );
        assert_eq!(classify(Some("5.5.0"), "smtp; 554 5.5.0 error"), Unknown);
        assert_eq!(classify(None, ""), Unknown);
        // "rbl" inside a word is not a blocklist.
        assert_eq!(classify(Some("5.0.0"), "smtp; 550 herbline"), Unknown);
    }

    #[test]
    fn synchronous_replies() {
        assert_eq!(
            classify_reply(
                550,
                "5.1.1 <a@sync.example>: Recipient address rejected: User unknown in relay recipient table"
            ),
            Hard
        );
        assert_eq!(classify_reply(452, "4.2.2 Mailbox full"), Soft);
        assert_eq!(
            classify_reply(550, "Requested action not taken: mailbox unavailable"),
            Unknown
        );
        assert_eq!(
            classify_reply(554, "5.7.1 Message rejected as spam"),
            Policy
        );
        assert_eq!(classify_reply(451, "Temporary local problem"), Soft);
        assert_eq!(classify_reply(999, "nonsense"), Unknown);
    }
}
