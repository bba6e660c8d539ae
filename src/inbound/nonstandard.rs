//! Bounces that are not RFC 3464 reports, recognised by their real wording:
//! qmail (and Yahoo's qmail heritage), Exim's text bounces, Sendmail,
//! Exchange and Office 365 NDRs, Gmail, Amazon SES (its JSON notifications
//! and its plain text), and a careful generic fallback for mailer daemons.

use super::status::{Code, reply_code};

/// A bounce read from its words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nonstandard {
    /// Which format matched: `qmail`, `exim`, `sendmail`, `exchange`,
    /// `gmail`, `ses`, `generic`.
    pub dialect: &'static str,
    pub recipients: Vec<Found>,
}

/// One recipient a bounce names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub address: String,
    /// The bounce says delivery is still being retried (a warning).
    pub delayed: bool,
    /// The remote server's reply or the bounce's explanation, one line.
    pub diagnostic: String,
}

impl Found {
    /// The enhanced status code the diagnostic gives, or the class of its
    /// SMTP reply code (`550` -> `5.0.0`).
    pub fn status(&self) -> Option<String> {
        Code::find(&self.diagnostic)
            .map(|c| c.to_string())
            .or_else(|| reply_code(&self.diagnostic).map(|c| format!("{}.0.0", c / 100)))
    }
}

/// What the caller knows about the message around the text.
pub struct Envelope<'a> {
    pub subject: &'a str,
    /// The `From` address, lower-cased.
    pub from: &'a str,
    /// `X-Failed-Recipients` (Exim) addresses, if any.
    pub failed_recipients: &'a [String],
    /// Addresses that are certainly not the bounced recipient (ours, the
    /// bounce's own From and To).
    pub not_recipients: &'a [String],
}

/// One format's reader: `(text, ASCII-lower-cased text)` to recipients.
type Reader = fn(&str, &str) -> Vec<Found>;

/// Reads `text` (the bounce's human-readable body) as one of the known
/// non-standard formats; `None` when none matches.
pub fn parse(text: &str, env: &Envelope<'_>) -> Option<Nonstandard> {
    let text = normalise(text);
    let lower = text.to_ascii_lowercase();
    // Each reader checks its own signature wording first.
    let readers: [(&'static str, Reader); 6] = [
        ("qmail", qmail),
        ("exim", exim),
        ("sendmail", sendmail),
        ("exchange", exchange),
        ("gmail", gmail),
        ("ses", ses_plain),
    ];
    for (dialect, read) in readers {
        let found = read(&text, &lower);
        if !found.is_empty() {
            return Some(Nonstandard {
                dialect,
                recipients: dedup(found),
            });
        }
    }
    let found = generic(&text, env);
    (!found.is_empty()).then(|| Nonstandard {
        dialect: "generic",
        recipients: dedup(found),
    })
}

/// CRLF to LF, and no NULs: the readers work on lines.
fn normalise(text: &str) -> String {
    text.replace("\r\n", "\n").replace(['\r', '\0'], "\n")
}

fn dedup(found: Vec<Found>) -> Vec<Found> {
    let mut out: Vec<Found> = Vec::new();
    for f in found {
        match out
            .iter_mut()
            .find(|o| o.address.eq_ignore_ascii_case(&f.address))
        {
            Some(o) if o.diagnostic.is_empty() => o.diagnostic = f.diagnostic,
            Some(_) => {}
            None => out.push(f),
        }
    }
    out
}

/// Lines of `text` after the first line containing `marker` (searched in
/// `lower`, the ASCII-lower-cased `text`, so that offsets agree).
fn lines_after<'t>(text: &'t str, lower: &str, marker: &str) -> Option<std::str::Lines<'t>> {
    let at = lower.find(marker)?;
    let mut lines = text.get(at..)?.lines();
    lines.next();
    Some(lines)
}

/// Appends a line to a diagnostic, one space between, at most 1000 bytes.
fn push_diag(diag: &mut String, line: &str) {
    for word in line.split_whitespace() {
        if diag.len() + word.len() > 1000 {
            return;
        }
        if !diag.is_empty() {
            diag.push(' ');
        }
        diag.push_str(word);
    }
}

/// The address a line consists of: `a@b`, `<a@b>`, `<a@b>:`, `'a@b'`,
/// `"a@b"`, `Name (a@b)`, `a@b (expanded from: …)`.
pub fn line_address(line: &str) -> Option<String> {
    let t = line.trim();
    let t = match t.find(" (expanded from") {
        Some(i) => &t[..i],
        None => t,
    };
    let t = t.trim_end_matches(':').trim();
    if let Some(inner) = t.strip_suffix(')')
        && let Some((_, addr)) = inner.rsplit_once('(')
        && let Some(a) = bare_address(addr)
    {
        return Some(a);
    }
    bare_address(t)
}

fn bare_address(s: &str) -> Option<String> {
    let s = s
        .trim()
        .trim_matches(|c| matches!(c, '<' | '>' | '"' | '\'' | ','))
        .trim();
    let (local, domain) = s.rsplit_once('@')?;
    let ok_local = !local.is_empty() && local.chars().all(is_local_char);
    let ok_domain = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '.' || c == '-');
    (ok_local && ok_domain && s.len() <= 320).then(|| s.to_owned())
}

fn is_local_char(c: char) -> bool {
    c.is_alphanumeric() || "._%+-=!#$&*/?^`{|}~'".contains(c)
}

/// Every address-looking token in a line.
pub fn addresses_in(line: &str) -> Vec<String> {
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut out = Vec::new();
    for (k, &(_, c)) in chars.iter().enumerate() {
        if c != '@' {
            continue;
        }
        let mut start = k;
        while start > 0 && is_local_char(chars[start - 1].1) && chars[start - 1].1 != '\'' {
            start -= 1;
        }
        let mut end = k + 1;
        while end < chars.len()
            && (chars[end].1.is_alphanumeric() || matches!(chars[end].1, '.' | '-'))
        {
            end += 1;
        }
        let from = chars.get(start).map_or(line.len(), |p| p.0);
        let to = chars.get(end).map_or(line.len(), |p| p.0);
        let token = line[from..to].trim_end_matches(['.', '-']);
        if let Some(a) = bare_address(token)
            && !out.contains(&a)
        {
            out.push(a);
        }
    }
    out
}

/// qmail and Yahoo (whose bounces still come from qmail's code): one
/// `<address>:` line per recipient, its reason on the lines below.
fn qmail(text: &str, lower: &str) -> Vec<Found> {
    const SIGNATURES: [&str; 4] = [
        "this is the qmail-send program",
        "wasn't able to deliver your message to the following addresses",
        "we were unable to deliver your message to the following address",
        "unable to deliver your message to the following addresses",
    ];
    let Some(sig) = SIGNATURES.iter().find(|s| lower.contains(**s)) else {
        return Vec::new();
    };
    let Some(lines) = lines_after(text, lower, sig) else {
        return Vec::new();
    };
    let mut found: Vec<Found> = Vec::new();
    let mut current: Option<Found> = None;
    for line in lines {
        let l = line.trim().to_lowercase();
        if l.starts_with("--- below this line")
            || l.starts_with("--- enclosed are")
            || l.starts_with("--- original message")
        {
            break;
        }
        if line.trim().is_empty() {
            if let Some(f) = current.take() {
                found.push(f);
            }
            continue;
        }
        let t = line.trim();
        if t.starts_with('<')
            && let Some((addr, rest)) = t.split_once(">:")
            && let Some(a) = bare_address(addr)
        {
            if let Some(f) = current.take() {
                found.push(f);
            }
            let mut diagnostic = String::new();
            push_diag(&mut diagnostic, rest);
            current = Some(Found {
                address: a,
                delayed: false,
                diagnostic,
            });
            continue;
        }
        if let Some(f) = current.as_mut() {
            push_diag(&mut f.diagnostic, t);
        }
    }
    found.extend(current);
    found
}

/// Exim's text bounces (before it sent RFC 3464 reports, and its text part
/// since): addresses indented by two spaces under "address(es) failed:",
/// details indented further.
fn exim(text: &str, lower: &str) -> Vec<Found> {
    if !lower.contains("this message was created automatically by mail delivery software") {
        return Vec::new();
    }
    let (marker, delayed) = if let Some(m) = [
        "the following address(es) failed:",
        "following addresses failed:",
        "the following address failed:",
    ]
    .into_iter()
    .find(|m| lower.contains(m))
    {
        (m, false)
    } else if let Some(m) = [
        "to which the message has not yet been delivered is:",
        "to which the message has not yet been delivered are:",
    ]
    .into_iter()
    .find(|m| lower.contains(m))
    {
        (m, true)
    } else {
        return Vec::new();
    };
    let Some(lines) = lines_after(text, lower, marker) else {
        return Vec::new();
    };
    let mut found: Vec<Found> = Vec::new();
    for line in lines {
        if line.starts_with("------") || line.trim_start().starts_with("------ This is a copy") {
            break;
        }
        if line.trim().is_empty() {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if indent == 0 {
            // Back to unindented prose ("No action is required…"): done.
            if found.is_empty() {
                continue;
            }
            break;
        }
        if indent <= 2 {
            if let Some(a) = line_address(line) {
                found.push(Found {
                    address: a,
                    delayed,
                    diagnostic: String::new(),
                });
            }
            continue;
        }
        if let Some(f) = found.last_mut() {
            let t = line.trim();
            // "host mx [ip]" says where, not what went wrong.
            if !t.starts_with("host ") || t.contains(':') {
                push_diag(&mut f.diagnostic, t.trim_start_matches("Delay reason: "));
            }
        }
    }
    found
}

/// Sendmail: a "----- The following addresses had permanent fatal errors
/// -----" section, each address followed by its `(reason: …)`.
fn sendmail(text: &str, lower: &str) -> Vec<Found> {
    let sections = [
        ("following addresses had permanent fatal errors", false),
        ("following addresses had transient non-fatal errors", true),
    ];
    let mut found: Vec<Found> = Vec::new();
    for (marker, delayed) in sections {
        let Some(lines) = lines_after(text, lower, marker) else {
            continue;
        };
        for line in lines {
            let t = line.trim();
            if t.is_empty() || t.starts_with("-----") {
                break;
            }
            if let Some(reason) = t.strip_prefix("(reason:") {
                if let Some(f) = found.last_mut() {
                    push_diag(&mut f.diagnostic, reason.trim_end_matches(')'));
                }
                continue;
            }
            if let Some(a) = line_address(t) {
                found.push(Found {
                    address: a,
                    delayed,
                    diagnostic: String::new(),
                });
            }
        }
    }
    // Without a reason, the transcript's reply for that address tells.
    if let Some(lines) = lines_after(text, lower, "----- transcript of session follows -----") {
        let transcript: Vec<&str> = lines.take(200).collect();
        for f in found.iter_mut().filter(|f| f.diagnostic.is_empty()) {
            let needle = f.address.to_lowercase();
            if let Some(l) = transcript.iter().find(|l| {
                let l = l.to_lowercase();
                l.contains(&needle) && reply_code(l.trim_start_matches("<<< ")).is_some()
            }) {
                push_diag(&mut f.diagnostic, l.trim_start_matches("<<< "));
            }
        }
    }
    found
}

/// Exchange and Office 365 non-delivery reports, in their text (or HTML
/// turned to text) forms from Exchange 2003 to today's Office 365.
fn exchange(text: &str, lower: &str) -> Vec<Found> {
    let mut found: Vec<Found> = Vec::new();
    let delayed = lower.contains("delivery is delayed to these recipients or groups");
    // The administrators' section pairs each address with the server reply.
    if let Some(lines) = lines_after(text, lower, "diagnostic information for administrators") {
        let lines: Vec<&str> = lines
            .take_while(|l| {
                !l.trim()
                    .to_lowercase()
                    .starts_with("original message headers")
            })
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        for pair in lines.windows(2) {
            let Some(a) = line_address(pair[0]) else {
                continue;
            };
            let reply = pair[1];
            let reply_lower = reply.to_ascii_lowercase();
            let diag = if let Some(r) = reply.strip_prefix('#') {
                r.trim_end_matches('#').trim()
            } else if let Some(i) = reply_lower.find("remote server returned") {
                reply
                    .get(i + "remote server returned".len()..)
                    .unwrap_or_default()
                    .trim()
                    .trim_matches(|c| c == '\'' || c == '"')
            } else if let Some(r) = reply.strip_prefix("Error:") {
                r.trim()
            } else {
                continue;
            };
            let mut diagnostic = String::new();
            push_diag(&mut diagnostic, diag);
            found.push(Found {
                address: a,
                delayed,
                diagnostic,
            });
        }
    }
    // Office 365's first line names the recipient.
    if found.is_empty()
        && let Some(i) = lower.find("your message to ")
    {
        let rest = text.get(i..).unwrap_or_default();
        let first = rest.lines().next().unwrap_or_default();
        if first.to_lowercase().contains("couldn't be delivered")
            && let Some(a) = addresses_in(first).into_iter().next()
        {
            let diagnostic = remote_server_returned(text, lower).unwrap_or_else(|| {
                let mut d = String::new();
                push_diag(&mut d, rest.lines().nth(1).unwrap_or_default());
                d
            });
            found.push(Found {
                address: a,
                delayed: false,
                diagnostic,
            });
        }
    }
    // Exchange 2007-2013 without the administrators' section.
    if found.is_empty() {
        for marker in [
            "delivery has failed to these recipients or groups:",
            "delivery is delayed to these recipients or groups:",
        ] {
            let Some(lines) = lines_after(text, lower, marker) else {
                continue;
            };
            let mut pending: Option<Found> = None;
            for line in lines {
                let t = line.trim();
                if t.is_empty() {
                    continue;
                }
                if let Some(a) = line_address(t) {
                    found.extend(pending.take());
                    pending = Some(Found {
                        address: a,
                        delayed,
                        diagnostic: String::new(),
                    });
                } else if let Some(p) = pending.as_mut() {
                    push_diag(&mut p.diagnostic, t);
                    found.extend(pending.take());
                } else {
                    break;
                }
            }
            found.extend(pending);
        }
    }
    // Exchange 2003.
    if found.is_empty()
        && let Some(lines) =
            lines_after(text, lower, "the following recipient(s) cannot be reached:")
    {
        let mut pending: Option<Found> = None;
        for line in lines {
            let t = line.trim();
            if t.is_empty() {
                continue;
            }
            let lead = t.split(" on ").next().unwrap_or(t);
            if let Some(a) = bare_address(lead) {
                found.extend(pending.take());
                pending = Some(Found {
                    address: a,
                    delayed: false,
                    diagnostic: String::new(),
                });
            } else if let Some(p) = pending.as_mut() {
                push_diag(&mut p.diagnostic, t);
            } else {
                break;
            }
        }
        found.extend(pending);
    }
    found
}

fn remote_server_returned(text: &str, lower: &str) -> Option<String> {
    let i = lower.find("remote server returned")?;
    let line = text.get(i..)?.lines().next()?;
    let mut d = String::new();
    push_diag(
        &mut d,
        line.get("remote server returned".len()..)
            .unwrap_or_default()
            .trim()
            .trim_matches(|c| c == '\'' || c == '"'),
    );
    Some(d)
}

/// Gmail's own bounces, in the old "Delivery to the following recipient
/// failed permanently" form and the newer "Address not found" one.
fn gmail(text: &str, lower: &str) -> Vec<Found> {
    let mut found = Vec::new();
    for (marker, delayed) in [
        (
            "delivery to the following recipient failed permanently:",
            false,
        ),
        (
            "delivery to the following recipients failed permanently:",
            false,
        ),
        (
            "delivery to the following recipient has been delayed:",
            true,
        ),
        (
            "delivery to the following recipients have been delayed:",
            true,
        ),
    ] {
        let Some(lines) = lines_after(text, lower, marker) else {
            continue;
        };
        let diagnostic = gmail_reply(text, lower).unwrap_or_default();
        for line in lines
            .skip_while(|l| l.trim().is_empty())
            .take_while(|l| !l.trim().is_empty())
        {
            if let Some(a) = line_address(line) {
                found.push(Found {
                    address: a,
                    delayed,
                    diagnostic: diagnostic.clone(),
                });
            }
        }
    }
    if !found.is_empty() {
        return found;
    }
    for (marker, delayed) in [
        ("your message wasn't delivered to ", false),
        ("there was a problem delivering your message to ", false),
        (
            "there was a temporary problem delivering your message to ",
            true,
        ),
        ("your message to ", false),
    ] {
        let Some(i) = lower.find(marker) else {
            continue;
        };
        let sentence = text
            .get(i..)
            .and_then(|t| t.lines().next())
            .unwrap_or_default();
        let s = sentence.to_lowercase();
        if marker == "your message to " && !s.contains("has been blocked") {
            continue;
        }
        if let Some(a) = addresses_in(sentence).into_iter().next() {
            let diagnostic = gmail_reply(text, lower).unwrap_or_else(|| {
                let mut d = String::new();
                push_diag(&mut d, sentence);
                d
            });
            found.push(Found {
                address: a,
                delayed,
                diagnostic,
            });
            break;
        }
    }
    found
}

/// The remote server's words in a Gmail bounce: the paragraph after "The
/// error that the other server returned was:" / "The response from the
/// remote server was:" (or "The response was:").
fn gmail_reply(text: &str, lower: &str) -> Option<String> {
    let marker = [
        "the error that the other server returned was:",
        "the response from the remote server was:",
        "the response was:",
    ]
    .into_iter()
    .find(|m| lower.contains(m))?;
    let at = lower.find(marker)? + marker.len();
    let rest = text.get(at..)?;
    let mut d = String::new();
    // The reply may follow the marker on its line (older Gmail) or start
    // on the next one.
    let mut lines = rest.lines();
    let first = lines.next().unwrap_or_default();
    push_diag(&mut d, first);
    let on_marker_line = !d.is_empty();
    let paragraph = lines.skip_while(|l| !on_marker_line && l.trim().is_empty());
    for l in paragraph.take_while(|l| !l.trim().is_empty()) {
        push_diag(&mut d, l);
    }
    (!d.is_empty()).then_some(d)
}

/// Amazon SES's plain-text bounce forms.
fn ses_plain(text: &str, lower: &str) -> Vec<Found> {
    let mut found = Vec::new();
    if let Some(lines) = lines_after(
        text,
        lower,
        "an error occurred while trying to deliver the mail to the following recipients:",
    ) {
        let diagnostic = ses_reason(text, lower).unwrap_or_default();
        for line in lines
            .skip_while(|l| l.trim().is_empty())
            .take_while(|l| !l.trim().is_empty())
        {
            if let Some(a) = line_address(line) {
                found.push(Found {
                    address: a,
                    delayed: false,
                    diagnostic: diagnostic.clone(),
                });
            }
        }
    }
    if found.is_empty()
        && let Some(i) = lower.find("the following message to ")
    {
        let sentence = text
            .get(i..)
            .and_then(|t| t.lines().next())
            .unwrap_or_default();
        if sentence.to_lowercase().contains("was undeliverable")
            && let Some(a) = addresses_in(sentence).into_iter().next()
        {
            found.push(Found {
                address: a,
                delayed: false,
                diagnostic: ses_reason(text, lower).unwrap_or_default(),
            });
        }
    }
    found
}

fn ses_reason(text: &str, lower: &str) -> Option<String> {
    let lines = lines_after(text, lower, "the reason for the problem:")?;
    let mut d = String::new();
    for l in lines
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| !l.trim().is_empty())
    {
        push_diag(&mut d, l);
    }
    (!d.is_empty()).then_some(d)
}

/// A message from a mailer daemon in no format we know: the addresses named
/// by `X-Failed-Recipients` or on lines with an SMTP reply code, and that
/// reply as the diagnostic. Only for mail that is plainly from a mail
/// system, so that a person's message is never read as a bounce.
fn generic(text: &str, env: &Envelope<'_>) -> Vec<Found> {
    if !from_mail_system(env.from, env.subject) {
        return Vec::new();
    }
    let subject = env.subject.to_lowercase();
    let delayed = [
        "delay",
        "warning",
        "still being retried",
        "not yet been delivered",
    ]
    .iter()
    .any(|w| subject.contains(w));
    let lines: Vec<&str> = human_part(text).lines().collect();
    let is_coded = |l: &str| {
        let t = l.trim().trim_start_matches(['#', '<', ' ']);
        reply_code(t).is_some_and(|c| c >= 400) || Code::find(t).is_some_and(|c| c.class >= 4)
    };
    let candidate = |a: &String| {
        !env.not_recipients.iter().any(|n| n.eq_ignore_ascii_case(a)) && !is_system_address(a)
    };
    let mut found = Vec::new();
    for a in env.failed_recipients.iter().filter(|a| candidate(a)) {
        let diag = lines
            .iter()
            .find(|l| is_coded(l))
            .map(|l| {
                let mut d = String::new();
                push_diag(&mut d, l);
                d
            })
            .unwrap_or_default();
        found.push(Found {
            address: a.clone(),
            delayed,
            diagnostic: diag,
        });
    }
    if !found.is_empty() {
        return found;
    }
    for (i, line) in lines.iter().enumerate() {
        if !is_coded(line) {
            continue;
        }
        let mut addrs: Vec<String> = addresses_in(line).into_iter().filter(candidate).collect();
        if addrs.is_empty() && i > 0 {
            addrs = addresses_in(lines[i - 1])
                .into_iter()
                .filter(candidate)
                .collect();
        }
        for a in addrs {
            let mut d = String::new();
            push_diag(&mut d, line);
            found.push(Found {
                address: a,
                delayed,
                diagnostic: d,
            });
        }
    }
    found
}

/// `MAILER-DAEMON@…`, `postmaster@…`, "Mail Delivery System", or a subject
/// that only a mail system writes.
pub fn from_mail_system(from: &str, subject: &str) -> bool {
    let from = from.to_lowercase();
    let local = from.rsplit_once('@').map_or(from.as_str(), |(l, _)| l);
    if matches!(
        local,
        "mailer-daemon"
            | "mailerdaemon"
            | "mail-daemon"
            | "postmaster"
            | "mdaemon"
            | "mail.delivery.system"
    ) {
        return true;
    }
    let subject = subject.to_lowercase();
    [
        "undeliverable",
        "undelivered mail",
        "delivery status notification",
        "delivery failure",
        "delivery failed",
        "mail delivery failed",
        "returned mail",
        "failure notice",
        "non remis",
        "unzustellbar",
        "nicht zustellbar",
        "no se puede entregar",
        "onbestelbaar",
        "impossibile recapitare",
    ]
    .iter()
    .any(|s| subject.contains(s))
}

fn is_system_address(a: &str) -> bool {
    let local = a
        .rsplit_once('@')
        .map_or(a, |(l, _)| l)
        .to_ascii_lowercase();
    matches!(
        local.as_str(),
        "mailer-daemon" | "postmaster" | "mail-daemon" | "mailerdaemon"
    )
}

/// The bounce's own text, without the returned message that many formats
/// append inline (its headers and body name other addresses).
fn human_part(text: &str) -> &str {
    let lower = text.to_ascii_lowercase();
    let mut end = text.len();
    for marker in [
        "--- below this line is a copy of the message",
        "------ this is a copy of the message",
        "----- original message -----",
        "original message headers:",
        "-----original message-----",
        "----- the header of the original message is following",
    ] {
        if let Some(i) = lower.find(marker) {
            end = end.min(i);
        }
    }
    // A header block of the original after a blank line.
    for start in ["\nreturn-path:", "\nreceived:", "\nmessage-id:"] {
        if let Some(i) = lower.find(&format!("\n{start}")) {
            end = end.min(i);
        }
    }
    &text[..end]
}

/// An Amazon SES notification (as an SNS email subscription delivers it:
/// the notification JSON itself, or the SNS envelope around it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ses {
    Bounce(Vec<SesRecipient>),
    Complaint {
        recipients: Vec<String>,
        feedback_type: Option<String>,
    },
    Delivery(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SesRecipient {
    pub address: String,
    pub action: Option<String>,
    pub status: Option<String>,
    pub diagnostic: String,
    /// SES's own judgement: `Permanent`/`Transient`/`Undetermined` and the
    /// subtype (`General`, `NoEmail`, `Suppressed`, `MailboxFull`, …).
    pub bounce_type: String,
    pub bounce_sub_type: String,
}

/// Reads an SES notification from a message body; `None` if the body is
/// not one.
pub fn ses_json(body: &str) -> Option<Ses> {
    let body = body.trim();
    if !body.starts_with('{') {
        return None;
    }
    // An SNS "email" subscription appends an unsubscribe footer after the
    // JSON: read the first value and ignore what follows.
    let mut v: serde_json::Value = serde_json::Deserializer::from_str(body)
        .into_iter()
        .next()?
        .ok()?;
    // SNS wraps the notification as a JSON string in "Message".
    if let Some(inner) = v.get("Message").and_then(|m| m.as_str()) {
        v = serde_json::from_str(inner).ok()?;
    }
    let kind = v
        .get("notificationType")
        .or_else(|| v.get("eventType"))
        .and_then(|k| k.as_str())?;
    let s = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
    match kind {
        "Bounce" => {
            let b = v.get("bounce")?;
            let bounce_type = s(b, "bounceType").unwrap_or_default();
            let bounce_sub_type = s(b, "bounceSubType").unwrap_or_default();
            let recipients = b
                .get("bouncedRecipients")?
                .as_array()?
                .iter()
                .filter_map(|r| {
                    Some(SesRecipient {
                        address: bare_address(r.get("emailAddress")?.as_str()?)?,
                        action: s(r, "action"),
                        status: s(r, "status")
                            .and_then(|c| Code::find(&c))
                            .map(|c| c.to_string()),
                        diagnostic: s(r, "diagnosticCode").unwrap_or_default(),
                        bounce_type: bounce_type.clone(),
                        bounce_sub_type: bounce_sub_type.clone(),
                    })
                })
                .collect();
            Some(Ses::Bounce(recipients))
        }
        "Complaint" => {
            let c = v.get("complaint")?;
            let recipients = c
                .get("complainedRecipients")
                .and_then(|r| r.as_array())
                .map(|r| {
                    r.iter()
                        .filter_map(|x| bare_address(x.get("emailAddress")?.as_str()?))
                        .collect()
                })
                .unwrap_or_default();
            Some(Ses::Complaint {
                recipients,
                feedback_type: s(c, "complaintFeedbackType").map(|t| t.to_ascii_lowercase()),
            })
        }
        "Delivery" => {
            let d = v.get("delivery")?;
            let recipients = d
                .get("recipients")
                .and_then(|r| r.as_array())
                .map(|r| r.iter().filter_map(|x| bare_address(x.as_str()?)).collect())
                .unwrap_or_default();
            Some(Ses::Delivery(recipients))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(subject: &'a str, from: &'a str) -> Envelope<'a> {
        Envelope {
            subject,
            from,
            failed_recipients: &[],
            not_recipients: &[],
        }
    }

    fn one(text: &str, dialect: &str) -> Found {
        let ns = parse(text, &env("", "")).unwrap_or_else(|| panic!("not recognised:\n{text}"));
        assert_eq!(ns.dialect, dialect);
        assert_eq!(ns.recipients.len(), 1, "{:?}", ns.recipients);
        ns.recipients.into_iter().next().unwrap()
    }

    #[test]
    fn qmail_local_and_remote() {
        let ns = parse(
            "Hi. This is the qmail-send program at mx.example.net.\n\
             I'm afraid I wasn't able to deliver your message to the following addresses.\n\
             This is a permanent error; I've given up. Sorry it didn't work out.\n\n\
             <nobody@example.net>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n\
             <other@example.org>:\n192.0.2.25 does not like recipient.\n\
             Remote host said: 550 5.1.1 <other@example.org>: Recipient address rejected: User unknown\n\
             Giving up on 192.0.2.25.\n\n\
             --- Below this line is a copy of the message.\n\nReturn-Path: <x@y.example>\n",
            &env("failure notice", "MAILER-DAEMON@mx.example.net"),
        )
        .unwrap();
        assert_eq!(ns.dialect, "qmail");
        assert_eq!(ns.recipients.len(), 2);
        assert_eq!(ns.recipients[0].address, "nobody@example.net");
        assert_eq!(ns.recipients[0].status().as_deref(), Some("5.1.1"));
        assert!(
            ns.recipients[1]
                .diagnostic
                .contains("Remote host said: 550 5.1.1")
        );
        assert_eq!(ns.recipients[1].status().as_deref(), Some("5.1.1"));
    }

    #[test]
    fn yahoo_is_qmail_shaped() {
        let f = one(
            "Sorry, we were unable to deliver your message to the following address.\n\n\
             <gone@yahoo.com>:\n554: delivery error: dd This user doesn't have a yahoo.com account (gone@yahoo.com) [0] - mta1012.mail.gq1.yahoo.com\n\n\
             --- Below this line is a copy of the message.\n",
            "qmail",
        );
        assert_eq!(f.address, "gone@yahoo.com");
        assert_eq!(f.status().as_deref(), Some("5.0.0"));
    }

    #[test]
    fn exim_text_failure_and_delay() {
        let f = one(
            "This message was created automatically by mail delivery software.\n\n\
             A message that you sent could not be delivered to one or more of its\n\
             recipients. This is a permanent error. The following address(es) failed:\n\n\
             \x20 ben@unknown.example\n\
             \x20   host mx.unknown.example [192.0.2.7]\n\
             \x20   SMTP error from remote mail server after RCPT TO:<ben@unknown.example>:\n\
             \x20   550 5.1.1 <ben@unknown.example>: Recipient address rejected: User unknown\n\n\
             ------ This is a copy of the message, including all the headers. ------\n",
            "exim",
        );
        assert_eq!(f.address, "ben@unknown.example");
        assert!(!f.delayed);
        assert!(
            f.diagnostic
                .starts_with("SMTP error from remote mail server"),
            "{}",
            f.diagnostic
        );
        assert_eq!(f.status().as_deref(), Some("5.1.1"));

        let f = one(
            "This message was created automatically by mail delivery software.\n\
             A message that you sent has not yet been delivered to one or more of its\n\
             recipients after more than 24 hours on the queue on mx.exim.example.\n\n\
             The address to which the message has not yet been delivered is:\n\n\
             \x20 eve@soft.example\n\
             \x20   Delay reason: SMTP error from remote mail server after RCPT TO:<eve@soft.example>:\n\
             \x20   450 4.2.0 try later\n\n\
             No action is required on your part.\n",
            "exim",
        );
        assert!(f.delayed);
        assert_eq!(f.status().as_deref(), Some("4.2.0"));
    }

    #[test]
    fn sendmail_with_reason_and_with_transcript_only() {
        let f = one(
            "The original message was received at Mon, 30 Nov 2026 06:00:12 +0100\n\
             from news.example.com [192.0.2.10]\n\n\
             \x20  ----- The following addresses had permanent fatal errors -----\n\
             <olduser@example.org>\n\
             \x20   (reason: 550 5.1.1 <olduser@example.org>... User unknown)\n\n\
             \x20  ----- Transcript of session follows -----\n",
            "sendmail",
        );
        assert_eq!(f.address, "olduser@example.org");
        assert_eq!(
            f.diagnostic,
            "550 5.1.1 <olduser@example.org>... User unknown"
        );

        let f = one(
            "   ----- The following addresses had permanent fatal errors -----\n\
             olduser@example.org\n\n\
             \x20  ----- Transcript of session follows -----\n\
             ... while talking to mx.example.org.:\n>>> RCPT To:<olduser@example.org>\n\
             <<< 550 5.1.1 <olduser@example.org>... User unknown\n",
            "sendmail",
        );
        assert_eq!(
            f.diagnostic,
            "550 5.1.1 <olduser@example.org>... User unknown"
        );
    }

    #[test]
    fn exchange_forms() {
        let f = one(
            "Delivery has failed to these recipients or groups:\n\n\
             Jane Roe (jane.roe@example.com)\n\
             The e-mail address you entered couldn't be found.\n\n\
             Diagnostic information for administrators:\n\n\
             Generating server: MAIL01.example.com\n\n\
             jane.roe@example.com\n#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##\n\n\
             Original message headers:\n\nFrom: a@b.example\n",
            "exchange",
        );
        assert_eq!(f.address, "jane.roe@example.com");
        assert_eq!(
            f.diagnostic,
            "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found"
        );

        let f = one(
            "Your message to jane.roe@example.com couldn't be delivered.\n\
             jane.roe wasn't found at example.com.\n\n\
             Diagnostic information for administrators:\n\
             Generating server: AM0PR01MB1234.eurprd01.prod.exchangelabs.com\n\
             jane.roe@example.com\n\
             Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup'\n",
            "exchange",
        );
        assert_eq!(f.status().as_deref(), Some("5.1.10"));

        let f = one(
            "Your message did not reach some or all of the intended recipients.\n\n\
             The following recipient(s) cannot be reached:\n\n\
             \x20     'old@example.com' on 30/11/2026 06:01\n\
             \x20           550 5.1.1 <old@example.com>... User unknown\n",
            "exchange",
        );
        assert_eq!(f.address, "old@example.com");
        assert_eq!(f.status().as_deref(), Some("5.1.1"));
    }

    #[test]
    fn gmail_forms() {
        let f = one(
            "Delivery to the following recipient failed permanently:\n\n     nobody@example.com\n\n\
             Technical details of permanent failure:\nGoogle tried to deliver your message, but it was rejected by the server.\n\n\
             The error that the other server returned was:\n550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown\n\n\
             ----- Original message -----\n",
            "gmail",
        );
        assert_eq!(f.address, "nobody@example.com");
        assert!(f.diagnostic.starts_with("550 5.1.1"));

        let f = one(
            "Delivery to the following recipient failed permanently:\n\n     old@example.org\n\n\
             Technical details of permanent failure:\nGoogle tried to deliver your message, but it was rejected by the recipient domain. \
             The error that the other server returned was: 550 550 5.1.1 <old@example.org>... User unknown (state 14).\n\n\
             ----- Original message -----\n",
            "gmail",
        );
        assert_eq!(
            f.diagnostic,
            "550 550 5.1.1 <old@example.org>... User unknown (state 14)."
        );

        let f = one(
            "** Address not found **\n\n\
             Your message wasn't delivered to nobody@example.com because the address couldn't be found, or is unable to receive mail.\n\n\
             The response from the remote server was:\n550 5.1.1 The email account that you tried to reach does not exist.\n",
            "gmail",
        );
        assert_eq!(f.address, "nobody@example.com");
        assert_eq!(f.status().as_deref(), Some("5.1.1"));

        let f = one(
            "** Delivery incomplete **\n\nThere was a temporary problem delivering your message to slow@example.com. Gmail will retry for 47 more hours.\n\n\
             The response was:\nThe recipient server did not accept our requests to connect.\n",
            "gmail",
        );
        assert!(f.delayed);
    }

    #[test]
    fn ses_plain_forms() {
        let f = one(
            "An error occurred while trying to deliver the mail to the following recipients:\r\nnobody@example.com\r\n",
            "ses",
        );
        assert_eq!(f.address, "nobody@example.com");
        let f = one(
            "The following message to <gone@example.com> was undeliverable.\n\
             The reason for the problem:\n\
             5.1.0 - Unknown address error 550-'5.1.1 <gone@example.com>: Recipient address rejected: User unknown in virtual mailbox table'\n",
            "ses",
        );
        assert_eq!(f.address, "gone@example.com");
        assert_eq!(f.status().as_deref(), Some("5.1.0"));
    }

    #[test]
    fn generic_needs_a_mail_system_sender() {
        let text = "Delivery failed for the following reason:\n550 5.1.1 <lost@example.org> mailbox unknown\n";
        assert_eq!(parse(text, &env("Re: hello", "friend@example.org")), None);
        let ns = parse(
            text,
            &env("Undeliverable: Morning Brief", "postmaster@mx.example.org"),
        )
        .unwrap();
        assert_eq!(ns.dialect, "generic");
        assert_eq!(ns.recipients[0].address, "lost@example.org");
        // X-Failed-Recipients wins; our own addresses never count.
        let failed = vec!["a@x.example".to_owned()];
        let ours = vec!["bounces+t@news.example.com".to_owned()];
        let ns = parse(
            "550 rejected <bounces+t@news.example.com>\n",
            &Envelope {
                subject: "Mail delivery failed",
                from: "mailer-daemon@x.example",
                failed_recipients: &failed,
                not_recipients: &ours,
            },
        )
        .unwrap();
        assert_eq!(ns.recipients.len(), 1);
        assert_eq!(ns.recipients[0].address, "a@x.example");
    }

    #[test]
    fn a_persons_mail_is_not_a_bounce() {
        assert_eq!(
            parse(
                "Hi, I got your newsletter, 550 thanks!",
                &env("Re: Morning Brief", "ana@example.org")
            ),
            None
        );
        assert_eq!(parse("", &env("", "")), None);
    }

    #[test]
    fn addresses_in_lines() {
        assert_eq!(
            line_address("  <a@b.example>:").as_deref(),
            Some("a@b.example")
        );
        assert_eq!(
            line_address("Jane Roe (jane@b.example)").as_deref(),
            Some("jane@b.example")
        );
        assert_eq!(
            line_address("a@b.example (expanded from: <c@d.example>)").as_deref(),
            Some("a@b.example")
        );
        assert_eq!(line_address("host mx.example [1.2.3.4]"), None);
        assert_eq!(line_address("not an address"), None);
        assert_eq!(
            addresses_in("550 5.1.1 <a@b.example>... User unknown; see c.d@e-f.example."),
            ["a@b.example", "c.d@e-f.example"]
        );
        assert!(addresses_in("no at sign").is_empty());
        assert!(addresses_in("@@@ a@ @b").is_empty());
    }

    #[test]
    fn ses_json_bounce_complaint_and_sns_envelope() {
        let bounce = r#"{"notificationType":"Bounce","bounce":{"bounceType":"Permanent","bounceSubType":"General",
            "bouncedRecipients":[{"emailAddress":"nobody@example.com","action":"failed","status":"5.1.1","diagnosticCode":"smtp; 550 5.1.1 user unknown"}]},
            "mail":{"messageId":"0100018c","source":"bounces+x@news.example.com"}}"#;
        let Some(Ses::Bounce(r)) = ses_json(bounce) else {
            panic!()
        };
        assert_eq!(r[0].address, "nobody@example.com");
        assert_eq!(r[0].status.as_deref(), Some("5.1.1"));
        assert_eq!(r[0].bounce_type, "Permanent");
        let wrapped = serde_json::json!({"Type": "Notification", "Message": r#"{"notificationType":"Complaint","complaint":{"complainedRecipients":[{"emailAddress":"ana@example.com"}],"complaintFeedbackType":"abuse"}}"#}).to_string();
        assert_eq!(
            ses_json(&wrapped),
            Some(Ses::Complaint {
                recipients: vec!["ana@example.com".into()],
                feedback_type: Some("abuse".into())
            })
        );
        let with_footer = format!(
            "{bounce}\n\n--\nIf you wish to stop receiving notifications from this topic, please click"
        );
        assert!(matches!(ses_json(&with_footer), Some(Ses::Bounce(_))));
        assert_eq!(ses_json("{not json"), None);
        assert_eq!(ses_json(r#"{"notificationType":"Other"}"#), None);
        assert_eq!(ses_json("plain text"), None);
    }
}
