//! What the ledger knows, as `status` shows it: each edition with its
//! delivery counts and what came back, each newsletter's unsubscribes,
//! bounces and complaint rate against the mailbox providers' limits, and
//! the relay's reputation problems apart from the subscribers'.

use anyhow::Result;
use chrono_tz::Tz;

use super::PlanStats;
use crate::ledger::{DeliveryState, EditionSummary, Ledger, ReturnCounts};
use crate::messages::{Message, plural};

/// Gmail's limit for the spam-complaint rate of a bulk sender.
pub const GMAIL_COMPLAINT_LIMIT: f64 = 0.003;
/// Google's advice: stay below this.
pub const COMPLAINT_ADVICE: f64 = 0.001;

/// What to show.
#[derive(Debug, Default)]
pub struct Query<'a> {
    pub newsletter: Option<&'a str>,
    /// One edition, in detail.
    pub edition: Option<&'a str>,
    /// Failed, deferred and in-doubt recipients with the relay's reply.
    pub failed: bool,
}

/// The lines of `status` (and its warnings) for `editions`.
pub fn report<'a>(
    ledger: &Ledger,
    editions: &[EditionSummary],
    q: &Query,
) -> Result<Vec<Message<'a>>> {
    let mut out = Vec::new();
    if editions.is_empty() {
        out.push(Message::Summary("no editions in the ledger".into()));
        return Ok(out);
    }
    out.push(Message::Summary(format!(
        "{:<26} {:<9} {:<22} {:>6} {:>8} {:>8} {:>6} {:>6}  subject / reason",
        "edition", "state", "slot", "sent", "pending", "deferred", "failed", "doubt"
    )));
    for e in editions {
        out.extend(edition(ledger, e, q)?);
    }
    let mut ids: Vec<&str> = editions.iter().map(|e| e.newsletter.as_str()).collect();
    ids.sort();
    ids.dedup();
    for id in ids {
        let sent: u64 = (editions.iter())
            .filter(|e| e.newsletter == id)
            .map(|e| e.counts.sent)
            .sum();
        let r = ledger.return_counts(None, Some(id))?;
        out.extend(newsletter(id, sent, &r));
    }
    Ok(out)
}

fn edition<'a>(ledger: &Ledger, e: &EditionSummary, q: &Query) -> Result<Vec<Message<'a>>> {
    let tz: Tz = e.zone.parse().unwrap_or(Tz::UTC);
    let c = e.counts;
    let note = e.subject.as_deref().or(e.reason.as_deref()).unwrap_or("");
    let slot = e.slot_utc.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z");
    let mut out = vec![Message::Summary(format!(
        "{:<26} {:<9} {:<22} {:>6} {:>8} {:>8} {:>6} {:>6}  {note}",
        e.id,
        e.state.to_string(),
        slot.to_string(),
        c.sent,
        c.pending,
        c.deferred,
        c.failed,
        c.in_doubt
    ))];
    let r = ledger.return_counts(Some(&e.id), None)?;
    if r != ReturnCounts::default() || c.suppressed > 0 {
        out.push(Message::Summary(format!(
            "  came back: {}",
            returns(&r, c.suppressed)
        )));
    }
    // Several relays: what each took, and which would not take sessions.
    let relays = ledger.relay_tallies(&e.id)?;
    if relays.len() > 1 {
        let each: Vec<String> = (relays.iter())
            .map(|t| {
                let mut s = format!("{} {} sent", t.relay, t.sent);
                for (n, what) in [
                    (t.deferred, "deferred"),
                    (t.failed, "failed"),
                    (t.in_doubt, "in doubt"),
                    (t.connect_failures, "refused connections"),
                ] {
                    if n > 0 {
                        s.push_str(&format!(", {n} {what}"));
                    }
                }
                s
            })
            .collect();
        out.push(Message::Summary(format!("  relays: {}", each.join("; "))));
    }
    if q.edition.is_some() {
        if let Some(stats) = ledger.stats(&e.id)? {
            let s = PlanStats::from_json(&stats);
            out.push(Message::Summary(format!("  planned: {} recipients of {}; {} suppressed, {} invalid rows, {} with nothing in this edition, {}", s.recipients, s.listed_text(), s.suppressed, s.invalid, s.empty, plural(s.variants, "rendering"))));
        }
        if let Some(done) = e.completed_at {
            let done = done.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S %Z");
            out.push(Message::Summary(format!("  completed {done}")));
        }
    }
    if !q.failed {
        return Ok(out);
    }
    let listed = [
        (DeliveryState::Failed, c.failed),
        (DeliveryState::Deferred, c.deferred),
        (DeliveryState::InDoubt, c.in_doubt),
    ];
    if listed.iter().all(|(_, n)| *n == 0) {
        out.push(Message::Summary(
            "  no failed, deferred or in-doubt recipients".into(),
        ));
    }
    // Deferred and in-doubt ones too: why they wait is what an operator
    // asks next.
    for (state, n) in listed {
        if n > 0 {
            for (email, reply) in ledger.replies(&e.id, state)? {
                out.push(Message::Summary(format!("  {state}: {email}: {reply}")));
            }
        }
    }
    Ok(out)
}

/// `2 unsubscribes, 1 hard bounce, …`.
fn returns(r: &ReturnCounts, suppressed_while_sending: u64) -> String {
    let mut parts = vec![
        plural(r.unsubscribes as usize, "unsubscribe"),
        plural(r.hard_bounces as usize, "hard bounce"),
        plural(r.soft_bounces as usize, "soft bounce"),
        plural(r.complaints as usize, "complaint"),
    ];
    if r.policy_blocks > 0 {
        parts.push(format!("{} refused for reputation", r.policy_blocks));
    }
    if suppressed_while_sending > 0 {
        parts.push(format!("{suppressed_while_sending} left out while sending"));
    }
    parts.join(", ")
}

/// A newsletter's line: what came back over all its editions, its
/// complaint rate against Gmail's limit, and a relay problem apart.
fn newsletter<'a>(id: &str, sent: u64, r: &ReturnCounts) -> Vec<Message<'a>> {
    let rate = match sent {
        0 => 0.0,
        n => r.complaints as f64 / n as f64,
    };
    let mut out = vec![Message::Summary(format!(
        "{id}: {} sent; {}; complaint rate {:.2}% (Gmail's limit {:.1}%)",
        sent,
        returns(r, 0),
        rate * 100.0,
        GMAIL_COMPLAINT_LIMIT * 100.0
    ))];
    if rate > COMPLAINT_ADVICE {
        out.push(Message::Warning(format!(
            "{id}: the complaint rate {:.2}% is over {:.1}%, Google's advice; at {:.1}% Gmail refuses bulk mail: look at what readers are complaining about",
            rate * 100.0,
            COMPLAINT_ADVICE * 100.0,
            GMAIL_COMPLAINT_LIMIT * 100.0
        )));
    }
    if r.policy_blocks > 0 {
        out.push(Message::Warning(format!(
            "{id}: {} refused for the relay's or the content's reputation (5.7.x, blocklists): a problem for whoever runs the relay, not the subscribers'",
            plural(r.policy_blocks as usize, "message")
        )));
    }
    out
}
