//! Reading mail that comes back: bounces (RFC 3464 reports and the common
//! non-standard formats), complaints (ARF), mailed unsubscribes and automatic
//! replies, each reduced to a [`Report`] and a [`Decision`]. Pure: bytes in,
//! a report out; the ledger, the files and the maildir are the caller's.
//!
//! [`classify`] never panics and never fails: what it cannot read is
//! [`Kind::Unknown`], which a caller keeps for a person to look at.

pub mod arf;
pub mod autoreply;
pub mod dsn;
mod fields;
pub mod identify;
pub mod nonstandard;
mod parts;
pub mod status;
pub mod tag;

use serde::{Deserialize, Serialize};

pub use identify::{OurMessageId, TagRef, Via};
pub use status::Class;

/// What the caller knows: the configured addresses and secrets, and, per
/// message, the envelope recipient if the delivery agent passed it.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The VERP base, e.g. `bounces@news.example.com`: each message's
    /// envelope sender is `bounces+<tag>@news.example.com`.
    pub bounce_address: Option<String>,
    /// The mailed-unsubscribe base, e.g. `unsubscribe@news.example.com`,
    /// whose `unsubscribe+<tag>@…` form goes in `List-Unsubscribe`.
    pub unsubscribe_address: Option<String>,
    /// Secrets that sign tags: the current one first, then the previous one
    /// while a rotation is under way.
    pub secrets: Vec<Vec<u8>>,
    /// Domains of our Message-IDs (the From domain, see
    /// `mail::message::message_id`).
    pub message_id_domains: Vec<String>,
    /// The envelope recipient of *this* message, when known (a Postfix
    /// `pipe` transport's `${original_recipient}`). Without it the
    /// `Delivered-To`, `X-Original-To`, `Envelope-To` and `To` headers serve.
    pub envelope_recipient: Option<String>,
    pub policy: Policy,
}

/// What to do about what came back (config `delivery.bounces`). The
/// defaults are the issue's: hard bounces suppress everywhere, soft ones
/// after three, complaints suppress the newsletter they were about.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Soft bounces, in distinct editions with no delivery in between,
    /// after which the ledger suppresses an address. Not used by
    /// [`Report::decide`] (one message is one soft bounce); carried here so
    /// that one struct holds the whole policy.
    pub soft_bounce_limit: u32,
    /// What a complaint suppresses.
    pub complaint_scope: Scope,
    /// Act on bounces and complaints only when a VERP tag verified. Turn on
    /// once every send uses VERP: then nobody can suppress a subscriber by
    /// mailing a forged bounce to the bounce address.
    pub require_tag: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            soft_bounce_limit: 3,
            complaint_scope: Scope::Newsletter,
            require_tag: false,
        }
    }
}

/// Which newsletters a suppression covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Newsletter,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Bounce,
    Complaint,
    Unsubscribe,
    AutoReply,
    /// A delivery report that is not a failure (delayed, delivered,
    /// relayed), or an authentication-failure report.
    Report,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Suppress,
    CountSoft,
    Ignore,
}

/// RFC 3464's `Action` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Failed,
    Delayed,
    Delivered,
    Relayed,
    Expanded,
}

impl Action {
    fn parse(value: &str) -> Option<Action> {
        Some(match value {
            "failed" | "failure" => Action::Failed,
            "delayed" | "deferred" => Action::Delayed,
            "delivered" => Action::Delivered,
            "relayed" => Action::Relayed,
            "expanded" => Action::Expanded,
            _ => return None,
        })
    }
}

/// One recipient a returned message names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recipient {
    /// The address we sent to: `Original-Recipient` when the report has
    /// one (after forwarding, `Final-Recipient` is someone else's), else
    /// `Final-Recipient` or what a non-standard bounce names.
    pub address: String,
    pub action: Option<Action>,
    /// The status code as reported (`5.1.1`); for a non-standard bounce,
    /// the one its text gives, or the class of its reply (`550` -> `5.0.0`).
    pub status: Option<String>,
    /// A failure that means the address is dead.
    pub hard: bool,
    pub diagnostic: Option<String>,
    /// What the failure means (judged from the status *and* the wording);
    /// meaningful for `failed` deliveries only.
    #[serde(skip)]
    pub class: Class,
    #[serde(skip)]
    pub final_recipient: Option<String>,
    #[serde(skip)]
    pub original_recipient: Option<String>,
    #[serde(skip)]
    pub remote_mta: Option<String>,
}

/// What identifies the message and its sender, for the caller to resolve
/// through the ledger; not part of the JSON line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    /// The VERP tag that verified: first one in the envelope or the
    /// message's own address headers, else the first anywhere (the returned
    /// original's `Return-Path` or `List-Unsubscribe`).
    pub tag: Option<TagRef>,
    /// A tag-shaped string that did not verify: forged, damaged, or signed
    /// with a retired secret. With no verified tag beside it, a bounce or
    /// complaint decides `ignore`.
    pub unverified_tag: Option<String>,
    /// Our Message-IDs seen in the returned headers, `References` or text.
    pub message_ids: Vec<OurMessageId>,
    /// The returned original's Message-ID when the message carries no tag
    /// and no id of ours: the bounce is about someone else's mail
    /// (backscatter from a forged sender, or a misdirected report).
    pub foreign_message_id: Option<String>,
    /// For complaints: the ARF `Feedback-Type` (or SES's), lower-cased.
    pub feedback_type: Option<String>,
    /// Which reader understood it: `rfc3464`, `arf`, `ses-json`, `qmail`,
    /// `exim`, `sendmail`, `exchange`, `gmail`, `ses`, `generic`,
    /// `auto-reply`, `mailto`.
    pub dialect: Option<&'static str>,
    pub reporting_mta: Option<String>,
    /// Where the message was addressed (envelope and address headers).
    pub addressed_to: Vec<String>,
    pub from: Option<String>,
    pub subject: Option<String>,
}

/// One returned message, classified. Serialises to the JSON line that
/// `briefing inbound --json` prints (a contract other tools read):
/// `{"source", "kind", "recipients": [{"address", "action", "status",
/// "hard", "diagnostic"}], "newsletter", "edition", "decision"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The input's name, filled by the caller (a file, `-` for stdin).
    pub source: String,
    pub kind: Kind,
    pub recipients: Vec<Recipient>,
    /// Resolved by the caller through the ledger from [`Evidence`].
    pub newsletter: Option<String>,
    pub edition: Option<String>,
    pub decision: Decision,
    #[serde(skip)]
    pub evidence: Evidence,
}

impl Report {
    /// The decision under `policy`. [`classify`] fills `decision` with the
    /// context's policy; a caller may ask again with another.
    pub fn decide(&self, policy: &Policy) -> Decision {
        let ev = &self.evidence;
        let identified = ev.tag.is_some() || !ev.message_ids.is_empty();
        let not_ours = !identified && ev.foreign_message_id.is_some();
        // A tag that does not verify, and none that does: a forgery, or a
        // message signed with a secret retired long ago. Either way nothing
        // vouches for the recipient it names.
        let forged = ev.tag.is_none() && ev.unverified_tag.is_some();
        let untagged = (policy.require_tag && ev.tag.is_none()) || forged;
        match self.kind {
            Kind::Bounce => {
                if not_ours || untagged {
                    return Decision::Ignore;
                }
                let failed = || {
                    self.recipients
                        .iter()
                        .filter(|r| r.action == Some(Action::Failed))
                };
                if failed().any(|r| r.hard) {
                    Decision::Suppress
                } else if failed().any(|r| matches!(r.class, Class::Soft | Class::Unknown)) {
                    Decision::CountSoft
                } else {
                    Decision::Ignore
                }
            }
            Kind::Complaint => {
                let suppresses = ev.feedback_type.as_deref().is_none_or(arf::suppresses);
                if not_ours
                    || untagged
                    || !suppresses
                    || (!identified && self.recipients.is_empty())
                {
                    Decision::Ignore
                } else {
                    Decision::Suppress
                }
            }
            Kind::Unsubscribe => {
                if identified || !self.recipients.is_empty() {
                    Decision::Suppress
                } else {
                    Decision::Ignore
                }
            }
            Kind::AutoReply | Kind::Report | Kind::Unknown => Decision::Ignore,
        }
    }

    /// What a suppression covers: every newsletter for a hard bounce, the
    /// policy's choice for a complaint, the tagged newsletter for a mailed
    /// unsubscribe. `None` when nothing is to be suppressed.
    pub fn scope(&self, policy: &Policy) -> Option<Scope> {
        if self.decide(policy) != Decision::Suppress {
            return None;
        }
        match self.kind {
            Kind::Bounce => Some(Scope::All),
            Kind::Complaint => Some(policy.complaint_scope),
            Kind::Unsubscribe => Some(Scope::Newsletter),
            _ => None,
        }
    }

    /// Some recipient was refused for policy or reputation: a problem for
    /// whoever runs the relay, to show in `status`, not a subscriber's.
    pub fn relay_problem(&self) -> bool {
        self.kind == Kind::Bounce
            && self
                .recipients
                .iter()
                .any(|r| r.action == Some(Action::Failed) && r.class == Class::Policy)
    }

    /// The JSON line, without a line end.
    pub fn to_json_line(&self) -> String {
        // Only strings, booleans and unit enums: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Larger inputs are read up to this size: a bounce's own parts come first
/// and are small; the returned original after them may be cut (mail-parser
/// reads a truncated message as far as it goes).
pub const MAX_INPUT: usize = 16 << 20;

/// Classifies one returned message. Pure and total: any bytes give a
/// report; `source`, `newsletter` and `edition` are left for the caller.
pub fn classify(raw: &[u8], ctx: &Context) -> Report {
    let raw = &raw[..raw.len().min(MAX_INPUT)];
    let Some(parsed) = parts::parse(raw) else {
        return Report::new(Kind::Unknown, Vec::new(), Evidence::default(), &ctx.policy);
    };
    let mut evidence = gather_evidence(raw, &parsed, ctx);
    let (kind, recipients) = read(&parsed, ctx, &mut evidence);
    Report::new(kind, recipients, evidence, &ctx.policy)
}

impl Report {
    fn new(kind: Kind, recipients: Vec<Recipient>, evidence: Evidence, policy: &Policy) -> Report {
        let mut r = Report {
            source: String::new(),
            kind,
            recipients,
            newsletter: None,
            edition: None,
            decision: Decision::Ignore,
            evidence,
        };
        r.decision = r.decide(policy);
        r
    }
}

/// Tries the readers from the most to the least specific.
fn read(p: &parts::Parsed, ctx: &Context, ev: &mut Evidence) -> (Kind, Vec<Recipient>) {
    if let Some(found) = read_dsn(p, ev) {
        return found;
    }
    if let Some(found) = read_arf(p, ev) {
        return found;
    }
    if let Some(found) = read_ses(p, ev) {
        return found;
    }
    if let Some(found) = read_nonstandard(p, ctx, ev) {
        return found;
    }
    // Mail systems mark their bounces `Auto-Submitted` too: one from a mail
    // system that no reader understood is unknown (kept for a person), not
    // an automatic reply to throw away.
    let from_mail_system = nonstandard::from_mail_system(
        p.from.as_deref().unwrap_or_default(),
        p.subject.as_deref().unwrap_or_default(),
    ) || !p.delivery_status.is_empty()
        || !p.feedback_reports.is_empty();
    if !from_mail_system && autoreply::is_auto_reply(p) {
        ev.dialect = Some("auto-reply");
        return (Kind::AutoReply, Vec::new());
    }
    if let Some(found) = read_mailto(p, ctx, ev) {
        return found;
    }
    (Kind::Unknown, Vec::new())
}

fn read_dsn(p: &parts::Parsed, ev: &mut Evidence) -> Option<(Kind, Vec<Recipient>)> {
    let mut recipients: Vec<Recipient> = Vec::new();
    for body in &p.delivery_status {
        let ds = dsn::parse(body);
        if ev.reporting_mta.is_none() {
            ev.reporting_mta = ds.reporting_mta;
        }
        for r in ds.recipients {
            let Some(address) = r
                .original_recipient
                .clone()
                .or_else(|| r.final_recipient.clone())
            else {
                continue;
            };
            let diagnostic = r.diagnostic.unwrap_or_default();
            let action = r.action.as_deref().and_then(Action::parse).or_else(|| {
                match r.status.as_deref().and_then(status::Code::parse)?.class {
                    5 => Some(Action::Failed),
                    4 => Some(Action::Delayed),
                    _ => Some(Action::Delivered),
                }
            });
            let recipient = recipient(address, action, r.status, diagnostic);
            let recipient = Recipient {
                final_recipient: r.final_recipient,
                original_recipient: r.original_recipient,
                remote_mta: r.remote_mta,
                ..recipient
            };
            if !recipients.iter().any(|o| {
                o.address.eq_ignore_ascii_case(&recipient.address) && o.action == recipient.action
            }) {
                recipients.push(recipient);
            }
        }
    }
    if recipients.is_empty() {
        return None;
    }
    ev.dialect = Some("rfc3464");
    Some((failure_kind(&recipients), recipients))
}

/// A recipient from what a report or a bounce says about it.
fn recipient(
    address: String,
    action: Option<Action>,
    status: Option<String>,
    diagnostic: String,
) -> Recipient {
    let class = status::classify(status.as_deref(), &diagnostic);
    Recipient {
        address,
        action,
        status,
        hard: action == Some(Action::Failed) && class == Class::Hard,
        diagnostic: (!diagnostic.is_empty()).then_some(diagnostic),
        class,
        final_recipient: None,
        original_recipient: None,
        remote_mta: None,
    }
}

fn failure_kind(recipients: &[Recipient]) -> Kind {
    if recipients.iter().any(|r| r.action == Some(Action::Failed)) {
        Kind::Bounce
    } else {
        Kind::Report
    }
}

fn read_arf(p: &parts::Parsed, ev: &mut Evidence) -> Option<(Kind, Vec<Recipient>)> {
    let feedback = p.feedback_reports.iter().find_map(|b| arf::parse(b))?;
    let mut addresses = feedback.original_rcpt_to.clone();
    if addresses.is_empty() {
        // The original's To, unless redacted.
        for r in &p.returned {
            for a in &r.to {
                if !arf::is_redacted(a) && !addresses.contains(a) {
                    addresses.push(a.clone());
                }
            }
        }
    }
    let diagnostic = format!("Feedback-Type: {}", feedback.feedback_type);
    let recipients = addresses
        .into_iter()
        .map(|address| Recipient {
            address,
            action: None,
            status: None,
            hard: false,
            diagnostic: Some(diagnostic.clone()),
            class: Class::Unknown,
            final_recipient: None,
            original_recipient: None,
            remote_mta: None,
        })
        .collect();
    ev.dialect = Some("arf");
    ev.reporting_mta = feedback.reporting_mta.clone();
    let kind = if feedback.feedback_type == "auth-failure" {
        Kind::Report
    } else {
        Kind::Complaint
    };
    ev.feedback_type = Some(feedback.feedback_type);
    Some((kind, recipients))
}

fn read_ses(p: &parts::Parsed, ev: &mut Evidence) -> Option<(Kind, Vec<Recipient>)> {
    let ses = p.texts.iter().find_map(|t| nonstandard::ses_json(t))?;
    ev.dialect = Some("ses-json");
    let plain = |address: String, action: Option<Action>, diagnostic: Option<String>| Recipient {
        address,
        action,
        status: None,
        hard: false,
        diagnostic,
        class: Class::Unknown,
        final_recipient: None,
        original_recipient: None,
        remote_mta: None,
    };
    Some(match ses {
        nonstandard::Ses::Bounce(rs) => {
            let recipients: Vec<Recipient> = rs
                .into_iter()
                .map(|r| {
                    let action = r
                        .action
                        .as_deref()
                        .and_then(|a| Action::parse(&a.to_ascii_lowercase()))
                        .or(Some(Action::Failed));
                    let mut rec = recipient(r.address, action, r.status, r.diagnostic);
                    // SES's own verdict where it is more certain than the text.
                    let class = match r.bounce_sub_type.as_str() {
                        "NoEmail" | "Suppressed" | "OnAccountSuppressionList" => Some(Class::Hard),
                        "MailboxFull" => Some(Class::Soft),
                        "MessageTooLarge" | "ContentRejected" | "AttachmentRejected" => {
                            Some(Class::Policy)
                        }
                        _ if r.bounce_type == "Transient" && rec.class == Class::Hard => {
                            Some(Class::Soft)
                        }
                        _ => None,
                    };
                    if let Some(c) = class {
                        rec.class = c;
                        rec.hard = rec.action == Some(Action::Failed) && c == Class::Hard;
                    }
                    rec
                })
                .collect();
            if recipients.is_empty() {
                return None;
            }
            (failure_kind(&recipients), recipients)
        }
        nonstandard::Ses::Complaint {
            recipients,
            feedback_type,
        } => {
            let diagnostic = feedback_type
                .as_ref()
                .map(|t| format!("Feedback-Type: {t}"));
            ev.feedback_type = feedback_type;
            let rs = recipients
                .into_iter()
                .map(|a| plain(a, None, diagnostic.clone()))
                .collect();
            (Kind::Complaint, rs)
        }
        nonstandard::Ses::Delivery(recipients) => {
            let rs = recipients
                .into_iter()
                .map(|a| plain(a, Some(Action::Delivered), None))
                .collect();
            (Kind::Report, rs)
        }
    })
}

fn read_nonstandard(
    p: &parts::Parsed,
    ctx: &Context,
    ev: &mut Evidence,
) -> Option<(Kind, Vec<Recipient>)> {
    let failed_recipients: Vec<String> = p
        .header_values("X-Failed-Recipients")
        .flat_map(nonstandard::addresses_in)
        .collect();
    let mut not_recipients: Vec<String> = p.to.clone();
    not_recipients.extend(p.from.clone());
    not_recipients.extend(ev.addressed_to.iter().cloned());
    not_recipients.extend(ctx.bounce_address.clone());
    not_recipients.extend(ctx.unsubscribe_address.clone());
    let text = p.texts.join("\n");
    let env = nonstandard::Envelope {
        subject: p.subject.as_deref().unwrap_or_default(),
        from: p.from.as_deref().unwrap_or_default(),
        failed_recipients: &failed_recipients,
        not_recipients: &not_recipients,
    };
    let ns = nonstandard::parse(&text, &env)?;
    let bases: Vec<_> = [&ctx.bounce_address, &ctx.unsubscribe_address]
        .into_iter()
        .flatten()
        .filter_map(|b| identify::split_base(b))
        .collect();
    let recipients: Vec<Recipient> = ns
        .recipients
        .into_iter()
        // Our own return path is never the bounced recipient.
        .filter(|f| {
            !bases
                .iter()
                .any(|b| identify::is_base_address(&f.address, b))
        })
        .map(|f| {
            let action = if f.delayed {
                Action::Delayed
            } else {
                Action::Failed
            };
            let status = f.status();
            recipient(f.address, Some(action), status, f.diagnostic)
        })
        .collect();
    if recipients.is_empty() {
        return None;
    }
    ev.dialect = Some(ns.dialect);
    Some((failure_kind(&recipients), recipients))
}

/// A message to the mailed-unsubscribe address: the `List-Unsubscribe`
/// `mailto:` (RFC 2369). Subject and body do not matter.
fn read_mailto(
    p: &parts::Parsed,
    ctx: &Context,
    ev: &mut Evidence,
) -> Option<(Kind, Vec<Recipient>)> {
    let base = ctx
        .unsubscribe_address
        .as_deref()
        .and_then(identify::split_base)?;
    if !ev
        .addressed_to
        .iter()
        .any(|a| identify::is_base_address(a, &base))
    {
        return None;
    }
    ev.dialect = Some("mailto");
    // The tag (if it verified) says who; the sender's From is what the
    // message claims, and all there is for an untagged address.
    let recipients = p
        .from
        .iter()
        .map(|a| Recipient {
            address: a.clone(),
            action: None,
            status: None,
            hard: false,
            diagnostic: None,
            class: Class::Unknown,
            final_recipient: None,
            original_recipient: None,
            remote_mta: None,
        })
        .collect();
    Some((Kind::Unsubscribe, recipients))
}

/// Tags and Message-IDs, searched first where the message was addressed,
/// then in its headers and parts, then in the raw bytes.
fn gather_evidence(raw: &[u8], p: &parts::Parsed, ctx: &Context) -> Evidence {
    let mut addressed_to: Vec<String> = Vec::new();
    addressed_to.extend(ctx.envelope_recipient.clone());
    for name in [
        "Delivered-To",
        "X-Original-To",
        "Envelope-To",
        "X-Envelope-To",
    ] {
        for v in p.header_values(name) {
            addressed_to.extend(parts::header_addresses(v));
        }
    }
    addressed_to.extend(p.to.iter().cloned());
    let mut seen = Vec::new();
    addressed_to.retain(|a| {
        let new = !seen.contains(&a.to_ascii_lowercase());
        seen.push(a.to_ascii_lowercase());
        new
    });

    let secrets: Vec<&[u8]> = ctx.secrets.iter().map(Vec::as_slice).collect();
    let mut finder = identify::Finder::new(
        ctx.bounce_address.as_deref(),
        ctx.unsubscribe_address.as_deref(),
        secrets,
        &ctx.message_id_domains,
        p.message_id.as_deref(),
    );
    // Where the message was addressed first: a tag there beats one quoted
    // in a returned original (which could be another delivery's).
    for a in &addressed_to {
        finder.scan(a);
    }
    for h in &p.haystacks {
        finder.scan(h);
    }
    finder.scan(&String::from_utf8_lossy(raw));
    let tag = finder.tags.first().cloned();
    let foreign_message_id = if tag.is_none() && finder.message_ids.is_empty() {
        p.returned.iter().find_map(|r| r.message_id.clone())
    } else {
        None
    };
    Evidence {
        tag,
        unverified_tag: finder.unverified,
        message_ids: finder.message_ids,
        foreign_message_id,
        feedback_type: None,
        dialect: None,
        reporting_mta: None,
        addressed_to,
        from: p.from.clone(),
        subject: p.subject.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"test-verp-secret";

    fn ctx() -> Context {
        Context {
            bounce_address: Some("bounces@news.example.com".into()),
            unsubscribe_address: Some("unsubscribe@news.example.com".into()),
            secrets: vec![SECRET.to_vec()],
            message_id_domains: vec!["news.example.com".into()],
            envelope_recipient: None,
            policy: Policy::default(),
        }
    }

    fn dsn(to: &str, status: &str, action: &str, diag: &str, original: &str) -> Vec<u8> {
        format!(
            "From: MAILER-DAEMON@relay.example\r\nTo: {to}\r\nSubject: Undelivered Mail Returned to Sender\r\n\
             Message-Id: <20261201170027.025E698F0A6@relay.example>\r\n\
             Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\n\r\nSorry.\r\n\
             --b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; relay.example\r\n\r\n\
             Final-Recipient: rfc822; ana@example.org\r\nAction: {action}\r\nStatus: {status}\r\nDiagnostic-Code: {diag}\r\n\r\n\
             --b\r\nContent-Type: text/rfc822-headers\r\n\r\n{original}\r\n\
             --b--\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn a_tagged_hard_bounce_suppresses() {
        let tag = tag::encode(7, 42, SECRET);
        let r = classify(
            &dsn(
                &format!("bounces+{tag}@news.example.com"),
                "5.1.1",
                "failed",
                "smtp; 550 5.1.1 user unknown",
                "Message-ID: <x@elsewhere.example>",
            ),
            &ctx(),
        );
        assert_eq!(r.kind, Kind::Bounce);
        assert_eq!(r.decision, Decision::Suppress);
        assert_eq!(r.scope(&Policy::default()), Some(Scope::All));
        let t = r.evidence.tag.as_ref().unwrap();
        assert_eq!((t.edition, t.recipient), (7, 42));
        assert_eq!(r.evidence.foreign_message_id, None, "the tag makes it ours");
        assert!(r.recipients[0].hard);
        assert_eq!(
            r.to_json_line(),
            r#"{"source":"","kind":"bounce","recipients":[{"address":"ana@example.org","action":"failed","status":"5.1.1","hard":true,"diagnostic":"smtp; 550 5.1.1 user unknown"}],"newsletter":null,"edition":null,"decision":"suppress"}"#
        );
    }

    #[test]
    fn someone_elses_bounce_is_ignored() {
        let r = classify(
            &dsn(
                "bounces@news.example.com",
                "5.1.1",
                "failed",
                "smtp; 550 5.1.1 user unknown",
                "Message-ID: <x@elsewhere.example>",
            ),
            &ctx(),
        );
        assert_eq!(r.kind, Kind::Bounce);
        assert_eq!(
            r.evidence.foreign_message_id.as_deref(),
            Some("<x@elsewhere.example>")
        );
        assert_eq!(r.decision, Decision::Ignore);
    }

    #[test]
    fn our_message_id_identifies_without_a_tag_unless_the_policy_wants_one() {
        let raw = dsn(
            "bounces@news.example.com",
            "5.2.2",
            "failed",
            "smtp; 552 5.2.2 mailbox full",
            "Message-ID: <am-2026-11-30T0600.0123456789abcdef@news.example.com>",
        );
        let r = classify(&raw, &ctx());
        assert_eq!(r.decision, Decision::CountSoft);
        assert_eq!(r.evidence.message_ids[0].edition_part, "am-2026-11-30T0600");
        let strict = Policy {
            require_tag: true,
            ..Policy::default()
        };
        assert_eq!(r.decide(&strict), Decision::Ignore);
    }

    #[test]
    fn delayed_is_a_report_and_policy_is_a_relay_problem() {
        let r = classify(
            &dsn(
                "bounces@news.example.com",
                "4.4.1",
                "delayed",
                "smtp; 451 try later",
                "",
            ),
            &ctx(),
        );
        assert_eq!((r.kind, r.decision), (Kind::Report, Decision::Ignore));
        let r = classify(
            &dsn(
                "bounces@news.example.com",
                "5.7.1",
                "failed",
                "smtp; 554 5.7.1 blocked using zen.spamhaus.org",
                "",
            ),
            &ctx(),
        );
        assert_eq!((r.kind, r.decision), (Kind::Bounce, Decision::Ignore));
        assert!(r.relay_problem());
        assert!(!r.recipients[0].hard);
    }

    #[test]
    fn mailed_unsubscribe_with_and_without_tag() {
        let tag = tag::encode(9, 10, SECRET);
        let raw = format!(
            "From: Ana <ana@example.org>\r\nTo: unsubscribe+{tag}@news.example.com\r\nSubject: unsubscribe\r\n\r\n\r\n"
        );
        let r = classify(raw.as_bytes(), &ctx());
        assert_eq!(
            (r.kind, r.decision),
            (Kind::Unsubscribe, Decision::Suppress)
        );
        assert_eq!(
            r.evidence
                .tag
                .as_ref()
                .map(|t| (t.edition, t.recipient, t.via)),
            Some((9, 10, Via::Unsubscribe))
        );
        assert_eq!(r.recipients[0].address, "ana@example.org");

        let mut c = ctx();
        c.envelope_recipient = Some("unsubscribe@news.example.com".into());
        let r = classify(b"From: ana@example.org\r\nTo: Newsroom <desk@news.example.com>\r\nSubject: stop\r\n\r\nstop\r\n", &c);
        assert_eq!(
            (r.kind, r.decision),
            (Kind::Unsubscribe, Decision::Suppress)
        );
        assert_eq!(r.evidence.tag, None);
    }

    #[test]
    fn an_auto_reply_to_the_unsubscribe_address_unsubscribes_nobody() {
        let raw = b"From: ana@example.org\r\nTo: unsubscribe@news.example.com\r\nAuto-Submitted: auto-replied\r\nSubject: Out of office\r\n\r\nAway.\r\n";
        let r = classify(raw, &ctx());
        assert_eq!((r.kind, r.decision), (Kind::AutoReply, Decision::Ignore));
    }

    #[test]
    fn a_forged_tag_suppresses_nobody() {
        let raw = dsn(
            "bounces+7-16-aaaaaaaaaaaaaaaa@news.example.com",
            "5.1.1",
            "failed",
            "smtp; 550 5.1.1 user unknown",
            "",
        );
        let r = classify(&raw, &ctx());
        assert_eq!(r.kind, Kind::Bounce);
        assert_eq!(
            r.evidence.unverified_tag.as_deref(),
            Some("7-16-aaaaaaaaaaaaaaaa")
        );
        assert_eq!(r.decision, Decision::Ignore);
        // The same report with the tag signed by the previous secret counts.
        let mut c = ctx();
        c.secrets.push(b"previous".to_vec());
        let old = tag::encode(7, 16, b"previous");
        let raw = dsn(
            &format!("bounces+{old}@news.example.com"),
            "5.1.1",
            "failed",
            "smtp; 550 5.1.1 user unknown",
            "",
        );
        let r = classify(&raw, &c);
        assert_eq!(r.evidence.tag.as_ref().map(|t| t.secret_index), Some(1));
        assert_eq!(r.decision, Decision::Suppress);
    }

    #[test]
    fn an_unreadable_bounce_is_kept_not_taken_for_an_auto_reply() {
        let raw = b"From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\nTo: bounces@news.example.com\r\n\
Subject: Undelivered Mail Returned to Sender\r\nAuto-Submitted: auto-replied\r\n\r\nSomething went wrong, in words nobody parses.\r\n";
        let r = classify(raw, &ctx());
        assert_eq!((r.kind, r.decision), (Kind::Unknown, Decision::Ignore));
    }

    #[test]
    fn utf8_delivery_status_rfc6533() {
        let raw = "From: MAILER-DAEMON@mx.example\r\nTo: bounces@news.example.com\r\n\
Content-Type: multipart/report; report-type=global-delivery-status; boundary=g\r\n\r\n\
--g\r\nContent-Type: message/global-delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n\
Final-Recipient: utf-8; jörg@bücher.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--g--\r\n";
        let r = classify(raw.as_bytes(), &ctx());
        assert_eq!((r.kind, r.decision), (Kind::Bounce, Decision::Suppress));
        assert_eq!(r.recipients[0].address, "jörg@bücher.example");
    }

    #[test]
    fn garbage_is_unknown() {
        for raw in [
            &b""[..],
            b"\0\0\0",
            b"hello",
            b"\xff\xfe\xfd\r\n\r\n",
            b"Subject: hi\r\n\r\nhow are you?",
        ] {
            let r = classify(raw, &ctx());
            assert_eq!(
                (r.kind, r.decision),
                (Kind::Unknown, Decision::Ignore),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn policy_deserialises_with_defaults() {
        let p: Policy = serde_json::from_str(r#"{"complaint_scope": "all"}"#).unwrap();
        assert_eq!(p.complaint_scope, Scope::All);
        assert_eq!(p.soft_bounce_limit, 3);
        assert!(serde_json::from_str::<Policy>(r#"{"nope": 1}"#).is_err());
    }
}
