//! What comes back, applied: a classified returned message (`inbound`), a
//! relay's synchronous refusal during a send, or a person's request becomes
//! suppressions and events in the ledger, under the newsroom's bounce policy
//! (`delivery.bounces`). The classifying is `inbound`'s; the storing is the
//! ledger's; this is the rule between them. `mailbox` reads the messages.

pub mod mailbox;

use anyhow::Result;
use chrono::Utc;
use serde_json::json;

use crate::inbound::{self, Class, Decision, Kind, Policy, Report, Scope};
use crate::ledger::{
    Ledger, ReturnEvent, ReturnKind, Suppression, SuppressionReason, SuppressionScope,
};

/// What applying one report or refusal did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Addresses newly suppressed, with the scope.
    pub suppressed: Vec<(String, SuppressionScope)>,
    /// Soft bounces counted (not yet suppressing).
    pub counted: Vec<String>,
    /// Policy or reputation refusals: the relay's problem, reported only.
    pub policy_blocks: Vec<String>,
}

/// What `briefing inbound` knows from config: the VERP and mailto bases,
/// the secrets, our Message-ID domains, the bounce policy.
pub fn context(
    newsroom: &crate::config::Newsroom,
    secrets: Vec<Vec<u8>>,
    envelope_recipient: Option<String>,
) -> inbound::Context {
    let d = &newsroom.config.delivery;
    let mut domains: Vec<String> = (newsroom.config.newsletters.iter())
        .filter_map(|n| {
            n.from
                .rsplit_once('@')
                .map(|(_, d)| d.trim_end_matches('>').to_ascii_lowercase())
        })
        .collect();
    domains.sort();
    domains.dedup();
    inbound::Context {
        bounce_address: d.bounce_address.clone(),
        unsubscribe_address: d.unsubscribe.mailto.clone(),
        secrets,
        message_id_domains: domains,
        envelope_recipient,
        policy: d.bounces.clone(),
    }
}

/// One returned message, classified, attributed and (unless a dry run)
/// applied.
pub struct Handled {
    pub report: Report,
    pub applied: Applied,
}

impl Handled {
    /// Understood (acted on, or deliberately ignored): a Maildir message
    /// may be filed as seen. An unknown one is kept for a person.
    pub fn understood(&self) -> bool {
        self.report.kind != Kind::Unknown
    }
}

/// Classifies `raw`, resolves it through the ledger (when there is one) and
/// applies it unless `dry_run`.
pub fn handle(
    ledger: Option<&mut Ledger>,
    ctx: &inbound::Context,
    source: &str,
    raw: &[u8],
    dry_run: bool,
) -> Result<Handled> {
    let mut report = inbound::classify(raw, ctx);
    report.source = source.to_owned();
    let mut applied = Applied::default();
    if let Some(ledger) = ledger {
        let resolved = resolve(ledger, &report)?;
        report.newsletter = resolved.newsletter.clone();
        report.edition = resolved.edition.clone();
        if !dry_run {
            let text = String::from_utf8_lossy(raw);
            applied = apply(ledger, &report, &resolved, &ctx.policy, &text)?;
        }
    }
    Ok(Handled { report, applied })
}

/// Where a report is about, once resolved through the ledger.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    pub newsletter: Option<String>,
    pub edition: Option<String>,
    /// The address the VERP tag names (authoritative over what a bounce's
    /// own fields say, which a forwarder may have rewritten).
    pub tagged_address: Option<String>,
}

/// Resolves a report's evidence (a VERP tag, our Message-IDs) to the
/// edition, newsletter and recipient in the ledger. A tag or id the ledger
/// does not know resolves to nothing.
pub fn resolve(ledger: &Ledger, report: &Report) -> Result<Resolved> {
    let ev = &report.evidence;
    if let Some(tag) = &ev.tag {
        if let Some((edition, newsletter, email)) =
            ledger.delivery_by_hash(tag.edition, inbound::tag::recipient_ref, tag.recipient)?
        {
            return Ok(Resolved {
                newsletter: Some(newsletter),
                edition: Some(edition),
                tagged_address: Some(email),
            });
        }
    }
    for id in &ev.message_ids {
        // A sign-up's confirmation: about an address, no edition.
        if id
            .edition_part
            .starts_with(crate::signup::notice::SIGNUP_ID)
        {
            if let Some(address) = ledger.confirmation_to(&id.recipient_hash)? {
                return Ok(Resolved {
                    newsletter: None,
                    edition: None,
                    tagged_address: Some(address),
                });
            }
            continue;
        }
        // `<edition-id.hash@domain>`; a test copy's edition part carries a
        // `.test-…` suffix and resolves to nothing.
        let Some(stored) = ledger.edition(&id.edition_part)? else {
            continue;
        };
        let want = u64::from_str_radix(&id.recipient_hash, 16).unwrap_or_default();
        let found = ledger.delivery_by_hash(stored.num, inbound::tag::recipient_ref, want)?;
        return Ok(Resolved {
            newsletter: Some(stored.newsletter),
            edition: Some(stored.id),
            tagged_address: found.map(|(_, _, email)| email),
        });
    }
    Ok(Resolved::default())
}

/// Records what `report` says under `policy`: a hard bounce suppresses the
/// address for every newsletter, a soft one is counted (and suppresses after
/// `soft_bounce_limit` in distinct editions with no delivery in between), a
/// complaint suppresses the newsletter it was about (or all), a mailed
/// unsubscribe suppresses its newsletter; policy blocks and auto-replies
/// suppress nobody. `raw` is kept as evidence for an audit.
pub fn apply(
    ledger: &mut Ledger,
    report: &Report,
    resolved: &Resolved,
    policy: &Policy,
    raw: &str,
) -> Result<Applied> {
    let mut out = Applied::default();
    let decision = report.decide(policy);
    let addresses: Vec<String> = match &resolved.tagged_address {
        Some(a) => vec![a.clone()],
        None => report
            .recipients
            .iter()
            .map(|r| r.address.to_ascii_lowercase())
            .collect(),
    };
    // An address the ledger never mailed for that edition is nobody we can
    // speak for: a forged or misdirected report.
    let mut known = Vec::new();
    for a in &addresses {
        let ok = match &resolved.edition {
            Some(e) => ledger.has_delivery(e, a)?,
            None => resolved.tagged_address.is_some(),
        };
        if ok {
            known.push(a.clone());
        }
    }
    let evidence = |extra: serde_json::Value| {
        json!({
            "source": report.source,
            "kind": report.kind,
            "edition": resolved.edition,
            "dialect": report.evidence.dialect,
            "feedback_type": report.evidence.feedback_type,
            "recipients": report.recipients,
            "detail": extra,
            "raw": raw,
        })
    };
    match (report.kind, decision) {
        (Kind::Bounce, _) if report.relay_problem() => {
            for a in &addresses {
                event(
                    ledger,
                    a,
                    resolved,
                    ReturnKind::PolicyBlock,
                    evidence(json!(null)),
                )?;
                out.policy_blocks.push(a.clone());
            }
        }
        (Kind::Bounce, Decision::Suppress) => {
            for a in &known {
                event(
                    ledger,
                    a,
                    resolved,
                    ReturnKind::HardBounce,
                    evidence(json!(null)),
                )?;
                if suppress(
                    ledger,
                    a,
                    SuppressionScope::All,
                    SuppressionReason::HardBounce,
                    evidence(json!(null)),
                )? {
                    out.suppressed.push((a.clone(), SuppressionScope::All));
                }
            }
        }
        (Kind::Bounce, Decision::CountSoft) => {
            for a in &known {
                event(
                    ledger,
                    a,
                    resolved,
                    ReturnKind::SoftBounce,
                    evidence(json!(null)),
                )?;
                out.counted.push(a.clone());
                if soft_limit_reached(ledger, a, policy.soft_bounce_limit)?
                    && suppress(
                        ledger,
                        a,
                        SuppressionScope::All,
                        SuppressionReason::SoftBounce,
                        evidence(json!({"soft_bounce_limit": policy.soft_bounce_limit})),
                    )?
                {
                    out.suppressed.push((a.clone(), SuppressionScope::All));
                }
            }
        }
        (Kind::Complaint, Decision::Suppress) => {
            let scope = match (policy.complaint_scope, &resolved.newsletter) {
                (Scope::Newsletter, Some(n)) => SuppressionScope::Newsletter(n.clone()),
                _ => SuppressionScope::All,
            };
            for a in &known {
                event(
                    ledger,
                    a,
                    resolved,
                    ReturnKind::Complaint,
                    evidence(json!(null)),
                )?;
                if suppress(
                    ledger,
                    a,
                    scope.clone(),
                    SuppressionReason::Complaint,
                    evidence(json!(null)),
                )? {
                    out.suppressed.push((a.clone(), scope.clone()));
                }
            }
        }
        (Kind::Unsubscribe, Decision::Suppress) => {
            let scope = match &resolved.newsletter {
                Some(n) => SuppressionScope::Newsletter(n.clone()),
                None => SuppressionScope::All,
            };
            for a in &addresses {
                event(
                    ledger,
                    a,
                    resolved,
                    ReturnKind::Unsubscribe,
                    evidence(json!(null)),
                )?;
                if suppress(
                    ledger,
                    a,
                    scope.clone(),
                    SuppressionReason::Mailto,
                    evidence(json!(null)),
                )? {
                    out.suppressed.push((a.clone(), scope.clone()));
                }
            }
        }
        _ => {}
    }
    Ok(out)
}

/// A relay's refusal of one recipient during our own SMTP session (a `550
/// 5.1.1` to `RCPT`): recorded like the bounce it is. Returns whether the
/// address was newly suppressed.
pub fn apply_refusal(
    ledger: &mut Ledger,
    edition_id: &str,
    newsletter: &str,
    address: &str,
    reply: &str,
) -> Result<bool> {
    let Some(code) = inbound::status::reply_code(reply) else {
        return Ok(false);
    };
    let resolved = Resolved {
        newsletter: Some(newsletter.to_owned()),
        edition: Some(edition_id.to_owned()),
        tagged_address: Some(address.to_owned()),
    };
    let evidence = json!({"source": "smtp", "edition": edition_id, "reply": reply});
    match inbound::status::classify_reply(code, reply) {
        Class::Hard if code >= 500 => {
            event(
                ledger,
                address,
                &resolved,
                ReturnKind::HardBounce,
                evidence.clone(),
            )?;
            suppress(
                ledger,
                address,
                SuppressionScope::All,
                SuppressionReason::HardBounce,
                evidence,
            )
        }
        Class::Policy => {
            event(
                ledger,
                address,
                &resolved,
                ReturnKind::PolicyBlock,
                evidence,
            )?;
            Ok(false)
        }
        _ => Ok(false),
    }
}

fn event(
    ledger: &mut Ledger,
    address: &str,
    r: &Resolved,
    kind: ReturnKind,
    evidence: serde_json::Value,
) -> Result<()> {
    ledger.record_event(&ReturnEvent {
        address: address.to_ascii_lowercase(),
        newsletter: r.newsletter.clone(),
        edition_id: r.edition.clone(),
        kind,
        at: Utc::now(),
        evidence,
    })?;
    Ok(())
}

fn suppress(
    ledger: &mut Ledger,
    address: &str,
    scope: SuppressionScope,
    reason: SuppressionReason,
    evidence: serde_json::Value,
) -> Result<bool> {
    Ok(ledger.suppress(&Suppression {
        address: address.to_ascii_lowercase(),
        scope,
        reason,
        created_at: Utc::now(),
        evidence,
    })?)
}

/// Whether the last `limit` editions sent to `address` each brought a soft
/// bounce back: `limit` soft bounces in distinct editions with no edition
/// in between that went through.
fn soft_limit_reached(ledger: &Ledger, address: &str, limit: u32) -> Result<bool> {
    let recent = ledger.editions_sent_to(address, limit as usize)?;
    if recent.len() < limit as usize {
        return Ok(false);
    }
    let bounced: std::collections::BTreeSet<String> = (ledger.events_about(address)?.into_iter())
        .filter(|e| e.kind == ReturnKind::SoftBounce)
        .filter_map(|e| e.edition_id)
        .collect();
    Ok(recent.iter().all(|e| bounced.contains(e)))
}
