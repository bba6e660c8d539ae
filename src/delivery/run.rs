//! Sending one edition through its life: missed or skipped, planned and
//! frozen (content and audience fixed in the ledger in one transaction), then
//! delivered under a lease, and resumed by later runs until complete. Returns
//! a typed [`EditionOutcome`]; the commands print it and map it to an exit
//! code.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context as _, Result, anyhow};
use chrono::{DateTime, Utc};

use super::compose::{Composer, secret};
use super::lease::{claim, holder, join};
use super::plan::{Plan, PlanStats, SectionPlan, plan};
use crate::audience;
use crate::config::{Newsletter, Newsroom, PostalAddress, TransportKind};
use crate::diag::{DiagnosticError, Diagnostics, display_path};
use crate::edition::{Edition, Slot, edition_id};
use crate::exit::Exit;
use crate::ledger::{
    Counts, Delivery, DeliveryUpdate, EditionState, EditionStub, Ledger, MAIN_RENDERING,
    StoredEdition,
};
use crate::mail::sender::{
    Job, Jobs, LeasedLedger, MessageSource, OutcomeSink, Progress, SendOptions, deliver,
};
use crate::mail::smtp::SmtpConnector;
use crate::mail::transport::Transport;
use crate::mail::variant::Placeholders;
use crate::messages::{Message, human, plural, progress_reporter};
use crate::pipeline::Pipeline;
use crate::render::SubscriberCtx;
use crate::time::slot_stamp;

/// How to send, beyond which edition.
#[derive(Debug, Default, Clone)]
pub struct Options {
    pub dry_run: bool,
    /// Test copies to these addresses instead of the edition.
    pub to: Vec<String>,
    /// At most this many messages in this run.
    pub limit: Option<usize>,
    /// Set by a signal handler: finish the messages in flight, then stop.
    pub stop: Option<Arc<AtomicBool>>,
    /// Progress lines even off a terminal (`-v`).
    pub verbose: bool,
}

/// How delivering a frozen edition went.
#[derive(Debug, Clone, Default)]
pub struct RunResult {
    pub progress: Progress,
    pub elapsed: std::time::Duration,
    /// Still pending or deferred after this run, for a later one.
    pub unsent: u64,
    /// Still to send, in the hands of other senders sharing the edition.
    pub elsewhere: u64,
    /// The run stopped early (relay refused us, lease lost): the reason.
    pub stopped: Option<String>,
    /// The send was limited by `--limit`.
    pub limited: bool,
}

/// What became of one edition.
#[derive(Debug)]
pub enum EditionOutcome {
    /// Delivered (some may be deferred or failed).
    Sent {
        run: RunResult,
        stats: PlanStats,
        resumed: bool,
    },
    /// Complete in the ledger already: nothing to do.
    AlreadyComplete { counts: Counts },
    /// Its slot is older than `max_delay` and it was never started: recorded
    /// as missed now. `first_run`: the newsletter's first run ever, whose
    /// latest slot had passed before briefing was installed (not an error).
    Missed { reason: String, first_run: bool },
    /// Missed or skipped earlier; nothing to do.
    Closed(EditionState),
    /// Fewer than `min_items` items: recorded as skipped.
    Skipped { items: usize, min_items: usize },
    /// Not frozen: items that may belong to it have errors (their files).
    /// Nothing is recorded, so the next run after the fix sends it, as long
    /// as it is within `max_delay`.
    Held { files: Vec<String> },
    /// `--dry-run` of an edition not started yet: what it would do, and
    /// what a real send would say first (late, missed or skipped earlier).
    Planned {
        subject: String,
        stats: PlanStats,
        sections: Vec<SectionPlan>,
        note: Option<String>,
    },
    /// `--dry-run` of an edition frozen earlier: where it stands (for a
    /// complete one, what was sent).
    Frozen { counts: Counts, stats: PlanStats },
    /// `--to`: test copies sent, not recorded; `via` says where they went
    /// (the outbox folder or the relay).
    Tested {
        sent: u64,
        failed: u64,
        to: Vec<String>,
        via: String,
    },
}

impl EditionOutcome {
    pub fn exit(&self) -> Exit {
        match self {
            EditionOutcome::Sent { run, .. }
                if run.stopped.is_some() || run.progress.failed > 0 =>
            {
                Exit::Failed
            }
            EditionOutcome::Sent { run, .. }
                if run.progress.deferred > 0 || (run.unsent > 0 && !run.limited) =>
            {
                Exit::TempFail
            }
            EditionOutcome::Missed { first_run, .. } => Exit::failed_if(!first_run),
            EditionOutcome::Held { .. } => Exit::Failed,
            EditionOutcome::Tested { failed, .. } => Exit::failed_if(*failed > 0),
            _ => Exit::Ok,
        }
    }

    /// Whether this run did something about the edition (for "nothing due").
    pub fn acted(&self) -> bool {
        !matches!(
            self,
            EditionOutcome::AlreadyComplete { .. } | EditionOutcome::Closed(_)
        )
    }
}

/// One edition's outcome with what to tell the newsroom about it.
#[derive(Debug)]
pub struct EditionRun {
    pub id: String,
    /// The slot in the newsletter's zone, e.g. `2026-11-30 06:00 EST`.
    pub local: String,
    pub outcome: EditionOutcome,
    /// Problems found on the way (items, templates, subscriber rows).
    pub diagnostics: Diagnostics,
}

impl EditionRun {
    fn new(n: &Newsletter, slot_at: DateTime<Utc>, outcome: EditionOutcome) -> EditionRun {
        EditionRun {
            id: edition_id(n, slot_at),
            local: slot_at
                .with_timezone(&n.timezone)
                .format("%Y-%m-%d %H:%M %Z")
                .to_string(),
            outcome,
            diagnostics: Diagnostics::default(),
        }
    }

    /// What `send` prints for this edition: its diagnostics, then its lines.
    pub fn messages(&self) -> Vec<Message<'_>> {
        let mut out = vec![Message::Diagnostics(&self.diagnostics)];
        out.extend(self.lines().into_iter().map(Message::Summary));
        out
    }

    /// The result lines for this edition.
    pub fn lines(&self) -> Vec<String> {
        let id = &self.id;
        match &self.outcome {
            EditionOutcome::Sent {
                run,
                stats,
                resumed,
            } => sent_lines(id, run, stats, *resumed),
            EditionOutcome::AlreadyComplete { counts } => vec![format!(
                "{id}: already complete (sent {}, failed {}); nothing to do",
                counts.sent, counts.failed
            )],
            EditionOutcome::Missed { reason, first_run } if *first_run => {
                vec![format!(
                    "{id}: not sent ({reason}); waiting for the next slot"
                )]
            }
            EditionOutcome::Missed { reason, .. } => {
                vec![format!("{id}: missed: {reason}; not sent")]
            }
            EditionOutcome::Closed(state) => vec![format!("{id}: {state} earlier; nothing to do")],
            EditionOutcome::Skipped { items, min_items } => vec![format!(
                "{id}: skipped: {} (min_items is {min_items})",
                plural(*items, "item")
            )],
            EditionOutcome::Held { files } => vec![format!(
                "{id}: not sent: {} that may belong to this edition {} errors ({}); fix {} and run again (it waits until max_delay)",
                plural(files.len(), "item"),
                if files.len() == 1 { "has" } else { "have" },
                files.join(", "),
                if files.len() == 1 { "it" } else { "them" },
            )],
            EditionOutcome::Planned {
                subject,
                stats: s,
                sections,
                note,
            } => {
                let mut out = vec![format!("{id} ({}): \"{subject}\"", self.local)];
                if let Some(note) = note {
                    out.push(format!("  note: {note}"));
                }
                out.push(format!(
                    "  {} would get it ({}, {} suppressed, {} invalid rows, {} with nothing in this edition), {}",
                    plural(s.recipients, "recipient"),
                    s.listed_text(),
                    s.suppressed,
                    s.invalid,
                    s.empty,
                    plural(s.variants, "rendering")
                ));
                for sec in sections {
                    let title = if sec.title.is_empty() {
                        "(all)"
                    } else {
                        &sec.title
                    };
                    out.push(format!(
                        "  {title:<28} {:>9}  {:>6} recipients",
                        plural(sec.items, "item"),
                        sec.recipients
                    ));
                }
                out
            }
            EditionOutcome::Frozen { counts: c, stats } => vec![format!(
                "{id}: {} earlier; {} sent, {} pending, {} deferred, {} failed (suppressed {}, invalid {}, empty {})",
                if c.unsent() == 0 { "sent" } else { "frozen" },
                c.sent,
                c.pending,
                c.deferred,
                c.failed,
                stats.suppressed as u64 + c.suppressed,
                stats.invalid,
                stats.empty
            )],
            EditionOutcome::Tested {
                sent,
                failed,
                to,
                via,
            } => vec![format!(
                "{id}: test copies to {}: {sent} sent, {failed} failed, via {via} (not recorded)",
                to.join(", ")
            )],
        }
    }
}

fn sent_lines(id: &str, run: &RunResult, stats: &PlanStats, resumed: bool) -> Vec<String> {
    let p = &run.progress;
    let secs = run.elapsed.as_secs_f64();
    let mut line = format!(
        "{id}: sent {}, deferred {}, failed {}, suppressed {}, invalid {}, empty {} in {:.1} s ({:.0} msg/s)",
        p.sent,
        p.deferred,
        p.failed,
        // Left out when planned, and since (unsubscribed while sending).
        stats.suppressed as u64 + p.suppressed,
        stats.invalid,
        stats.empty,
        secs,
        p.done() as f64 / secs.max(0.001)
    );
    if resumed {
        line.push_str(" [resumed]");
    }
    if run.limited {
        line.push_str(&format!("; {} left pending (--limit)", run.unsent));
    } else if run.unsent > 0 {
        line.push_str(&format!("; {} deferred to the next run", run.unsent));
    }
    if run.elsewhere > 0 {
        line.push_str(&format!("; {} being sent by other senders", run.elsewhere));
    }
    let mut out = vec![line];
    if let Some(why) = &run.stopped {
        out.push(format!("{id}: sending stopped: {why}"));
    }
    out
}

fn stub(n: &Newsletter, slot_at: DateTime<Utc>) -> EditionStub {
    EditionStub {
        id: edition_id(n, slot_at),
        newsletter: n.id.clone(),
        slot_utc: slot_at,
        zone: n.timezone.name().into(),
    }
}

/// Records the slot as missed (unless a dry run) and says so. A first
/// run's passed slot is recorded as skipped: nothing was missed on
/// briefing's watch, and `status` should not say so.
pub fn record_missed(
    newsroom: &Newsroom,
    n: &Newsletter,
    slot_at: DateTime<Utc>,
    reason: String,
    first_run: bool,
    dry_run: bool,
) -> Result<EditionRun> {
    if !dry_run {
        let mut ledger = open_ledger(newsroom)?;
        match first_run {
            true => ledger.record_skipped(&stub(n, slot_at), &reason)?,
            false => ledger.record_missed(&stub(n, slot_at), &reason)?,
        }
    }
    let run = EditionRun::new(n, slot_at, EditionOutcome::Missed { reason, first_run });
    if !first_run {
        tracing::error!(edition = %run.id, "missed; it will not be sent late");
    }
    Ok(run)
}

pub fn open_ledger(newsroom: &Newsroom) -> Result<Ledger> {
    let path = &newsroom.config.ledger;
    Ledger::open(path).with_context(|| format!("cannot open the ledger {path}"))
}

/// Sends (or plans, or test-sends) the edition of `n` at `slot`, as of `now`.
pub fn send(
    pipeline: &Pipeline,
    n: &Newsletter,
    slot: Slot,
    now: DateTime<Utc>,
    opts: &Options,
) -> Result<EditionRun> {
    let newsroom = pipeline.newsroom();
    let id = edition_id(n, slot.at);
    let mut ledger = open_ledger(newsroom)?;
    let stored = ledger.edition(&id)?;
    // What a real send would do first; a dry run shows the plan whatever
    // the answer, with the answer as a note.
    let mut note = None;
    if opts.to.is_empty() {
        let outcome = match stored.as_ref().map(|s| s.state) {
            Some(EditionState::Complete | EditionState::Frozen | EditionState::Sending)
                if opts.dry_run =>
            {
                Some(EditionOutcome::Frozen {
                    counts: ledger.counts(&id)?,
                    stats: stats(&ledger, &id)?,
                })
            }
            Some(EditionState::Complete) => Some(EditionOutcome::AlreadyComplete {
                counts: ledger.counts(&id)?,
            }),
            Some(state @ (EditionState::Missed | EditionState::Skipped)) if opts.dry_run => {
                note = Some(format!("{state} earlier; a send would do nothing"));
                None
            }
            Some(state @ (EditionState::Missed | EditionState::Skipped)) => {
                Some(EditionOutcome::Closed(state))
            }
            Some(_) => {
                preflight(newsroom, n, slot.at)?;
                return resume(newsroom, n, &id, ledger, opts);
            }
            None => None,
        };
        if let Some(outcome) = outcome {
            return Ok(EditionRun::new(n, slot.at, outcome));
        }
        let late_by = now - slot.at;
        if late_by > n.max_delay && stored.is_none() {
            let local = EditionRun::new(n, slot.at, EditionOutcome::Closed(EditionState::Missed));
            let reason = format!(
                "slot {} was {} late when the sender ran, max_delay is {}",
                local.local,
                human(late_by),
                human(n.max_delay)
            );
            if !opts.dry_run {
                return record_missed(newsroom, n, slot.at, reason, false, false);
            }
            note = Some(format!("a send now would record it missed: {reason}"));
        }
    }

    let ed = pipeline.edition_at(n, slot);
    let mut diagnostics = pipeline.diagnostics();
    // A story with errors is never silently left out of a sent edition.
    let broken = pipeline.library().broken_in(slot.start, slot.at);
    if !broken.is_empty() && opts.to.is_empty() && !opts.dry_run {
        let files = broken
            .iter()
            .map(|b| b.path.display().to_string())
            .collect();
        let mut run = EditionRun::new(n, slot.at, EditionOutcome::Held { files });
        run.diagnostics = diagnostics;
        return Ok(run);
    }
    if !ed.is_sendable() {
        let (items, min_items) = (ed.item_count(), n.min_items.max(1));
        if !opts.dry_run && opts.to.is_empty() {
            let why = format!("{} (min_items {min_items})", plural(items, "item"));
            ledger.record_skipped(&stub(n, slot.at), &why)?;
        }
        let mut run = EditionRun::new(n, slot.at, EditionOutcome::Skipped { items, min_items });
        run.diagnostics = diagnostics;
        return Ok(run);
    }
    if !pipeline.templates_ok() {
        newsroom_error(&diagnostics)?;
    }
    let planning = Instant::now();
    let plan = plan(pipeline, &ed)?;
    diagnostics.extend(plan.warnings.iter().cloned());
    let mut run = if !opts.to.is_empty() {
        let (p, via) = send_test_copies(pipeline, &ed, &plan, &opts.to)?;
        let (sent, failed) = (p.sent, p.failed + p.deferred);
        let to = opts.to.clone();
        let outcome = EditionOutcome::Tested {
            sent,
            failed,
            to,
            via,
        };
        EditionRun::new(n, slot.at, outcome)
    } else if opts.dry_run {
        let outcome = EditionOutcome::Planned {
            subject: (plan.frozen.main()).map_or_else(String::new, |m| m.subject.clone()),
            stats: plan.stats.clone(),
            sections: plan.sections.clone(),
            note,
        };
        EditionRun::new(n, slot.at, outcome)
    } else {
        freeze(newsroom, n, &ed, &plan, &mut ledger, planning)?;
        // The audience is in the ledger now; sending reads it from there in
        // batches, so the plan's copy goes before the first message.
        drop(plan);
        resume(newsroom, n, &id, ledger, opts)?
    };
    run.diagnostics = diagnostics;
    Ok(run)
}

fn newsroom_error(diagnostics: &Diagnostics) -> Result<()> {
    let first = diagnostics.iter().find(|d| d.is_error());
    Err(anyhow!(
        "the templates have errors{}",
        first
            .map(|d| format!(": {}", d.headline()))
            .unwrap_or_default()
    ))
}

fn freeze(
    newsroom: &Newsroom,
    n: &Newsletter,
    ed: &Edition,
    plan: &Plan,
    ledger: &mut Ledger,
    planning: Instant,
) -> Result<()> {
    preflight(newsroom, n, ed.slot.at)?;
    if ledger.freeze_edition(&plan.frozen, &plan.recipients)? {
        ledger.set_stats(&ed.id, &plan.stats.to_json())?;
        let s = &plan.stats;
        // bench/send_vs_smtp_source.sh reads the time: planning and the
        // freezing transaction together.
        tracing::debug!(
            edition = %ed.id,
            recipients = s.recipients,
            variants = s.variants,
            seconds = planning.elapsed().as_secs_f64(),
            "edition frozen"
        );
    }
    Ok(())
}

fn stats(ledger: &Ledger, id: &str) -> Result<PlanStats> {
    Ok(ledger
        .stats(id)?
        .map(|v| PlanStats::from_json(&v))
        .unwrap_or_default())
}

/// Delivers what is pending of a frozen edition, under its lease.
pub fn resume(
    newsroom: &Newsroom,
    n: &Newsletter,
    edition_id: &str,
    mut ledger: Ledger,
    opts: &Options,
) -> Result<EditionRun> {
    let holder = holder();
    let slot_at = match ledger.edition(edition_id)? {
        Some(e) => e.slot_utc,
        None => return Err(anyhow!("edition {edition_id} vanished from the ledger")),
    };
    // Other senders (this machine's, other hosts') may be sending it too:
    // each claims its own batches.
    join(&mut ledger, edition_id, &holder, lease_ttl(newsroom))?;
    // Read again under the lease: another sender may have finished the
    // edition between our first look and our joining. Losing that race is
    // nothing to report.
    let stored = ledger
        .edition(edition_id)?
        .ok_or_else(|| anyhow!("edition {edition_id} vanished from the ledger"))?;
    let closed = match stored.state {
        EditionState::Complete => Some(EditionOutcome::AlreadyComplete {
            counts: ledger.counts(edition_id)?,
        }),
        state @ (EditionState::Missed | EditionState::Skipped) => {
            Some(EditionOutcome::Closed(state))
        }
        EditionState::Frozen | EditionState::Sending => None,
    };
    if let Some(outcome) = closed {
        let _ = ledger.release_lease(edition_id, &holder);
        return Ok(EditionRun::new(n, slot_at, outcome));
    }
    let resumed = stored.state != EditionState::Frozen;
    let stats = stats(&ledger, edition_id)?;
    ledger.mark_sending(edition_id)?;
    let result = deliver_frozen(newsroom, n, stored, ledger, &holder, opts);
    // Whatever happened, let the next sender in.
    if let Ok(mut l) = open_ledger(newsroom) {
        let _ = l.release_lease(edition_id, &holder);
    }
    let run = result?;
    if let Some(why) = &run.stopped {
        tracing::error!(edition = %edition_id, "sending stopped: {why}");
    }
    let outcome = EditionOutcome::Sent {
        run,
        stats,
        resumed,
    };
    Ok(EditionRun::new(n, slot_at, outcome))
}

/// Checks, before anything is frozen or sent, what a send needs and a person
/// must fix: the unsubscribe secret, the From and Reply-To addresses, the
/// DKIM key, the SMTP URL and TLS policy, the password variable, the postal
/// address the footer must show. A send that
/// cannot start must leave no trace in the ledger: a frozen edition is
/// finished by the next run however late that is, which would defeat
/// `max_delay`.
pub fn preflight(newsroom: &Newsroom, n: &Newsletter, slot: DateTime<Utc>) -> Result<()> {
    let d = &newsroom.config.delivery;
    if d.transport == TransportKind::Smtp
        && newsroom.config.site.postal_address == PostalAddress::Missing
    {
        return Err(anyhow!(
            "refusing to send over SMTP without a postal address: commercial email must show the sender's (the US CAN-SPAM Act); set `site.postal_address` in {}, or `postal_address: none` if your newsletters need none",
            newsroom.config_path.display()
        ));
    }
    let secret = secret(newsroom)?;
    Composer::new(newsroom, n, "preflight", secret)?;
    for settings in transport(newsroom, n, slot)?.relays() {
        SmtpConnector::new(&settings)?;
    }
    Ok(())
}

/// The lease a sender holds on an edition it sends (`delivery.lease`).
fn lease_ttl(newsroom: &Newsroom) -> std::time::Duration {
    newsroom.config.delivery.lease
}

/// An edition's deliveries still to try, claimed from the ledger [`BATCH`]
/// at a time for this sender (other senders claim theirs), each batch in
/// address order. A claim fails only when the ledger does: the send then
/// stops as after any ledger failure, and the rest is still pending.
struct ClaimedBatches {
    ledger: Ledger,
    edition_id: String,
    holder: String,
    batch: std::vec::IntoIter<Delivery>,
    done: bool,
}

/// Recipients claimed from the ledger at a time while sending: small enough
/// that senders sharing an edition share it evenly and a crashed one leaves
/// little to take over, large enough that claiming costs nothing next to
/// sending.
const BATCH: usize = 256;

impl ClaimedBatches {
    fn new(ledger: Ledger, edition_id: &str, holder: &str) -> Self {
        ClaimedBatches {
            ledger,
            edition_id: edition_id.to_owned(),
            holder: holder.to_owned(),
            batch: Vec::new().into_iter(),
            done: false,
        }
    }
}

impl Iterator for ClaimedBatches {
    type Item = Delivery;

    fn next(&mut self) -> Option<Delivery> {
        if let Some(d) = self.batch.next() {
            return Some(d);
        }
        if self.done {
            return None;
        }
        match claim(&mut self.ledger, &self.edition_id, &self.holder, BATCH) {
            Ok(batch) => {
                self.done = batch.len() < BATCH;
                self.batch = batch.into_iter();
                self.batch.next()
            }
            Err(e) => {
                tracing::error!(edition = %self.edition_id, "cannot read the next recipients: {e:#}");
                self.done = true;
                None
            }
        }
    }
}

/// The transport for one edition (the outbox gets a folder per edition).
pub fn transport(newsroom: &Newsroom, n: &Newsletter, slot: DateTime<Utc>) -> Result<Transport> {
    let d = &newsroom.config.delivery;
    Ok(match d.transport {
        TransportKind::Outbox => Transport::Outbox {
            dir: d.outbox.join(&n.id).join(slot_stamp(slot, n.timezone)),
        },
        TransportKind::Smtp => match d.relays.as_slice() {
            [] => {
                return Err(anyhow!(
                    "delivery.transport is smtp but delivery.smtp is missing"
                ));
            }
            [one] => Transport::Smtp(one.clone()),
            several => Transport::Relays(several.to_vec()),
        },
    })
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Delivers the pending and deferred recipients of a frozen edition, at
/// most `opts.limit` of them. The caller holds the lease.
fn deliver_frozen(
    newsroom: &Newsroom,
    n: &Newsletter,
    stored: StoredEdition,
    ledger: Ledger,
    holder: &str,
    opts: &Options,
) -> Result<RunResult> {
    let total_unsent = ledger.counts(&stored.id)?.unsent();
    let total = opts
        .limit
        .map_or(total_unsent, |l| total_unsent.min(l as u64));
    let limited = total < total_unsent;
    let composer = Arc::new(
        Composer::new(newsroom, n, &stored.id, secret(newsroom)?)?.for_edition(stored.num),
    );
    let transport = transport(newsroom, n, stored.slot_utc)?;
    let stored = Arc::new(stored);
    // Asked before each message: an unsubscribe (or a bounce) recorded while
    // the edition is sending stops the rest of its mail to that person.
    let store = Arc::new(std::sync::Mutex::new(open_ledger(newsroom)?));
    let job = {
        let (composer, stored) = (composer.clone(), stored.clone());
        move |d: Delivery| {
            let (composer, stored) = (composer.clone(), stored.clone());
            Job {
                message_id: Some(composer.message_id(&stored.id, &d.email)),
                email: d.email.clone(),
                envelope_from: composer.envelope_for(&d.email),
                message: MessageSource::Compose(Box::new(move || {
                    let content = stored
                        .content(d.rendering)
                        .or_else(|| stored.content(MAIN_RENDERING))
                        .ok_or("the frozen edition has no content for this recipient")?;
                    composer.compose(&stored.id, content, &d.email, d.name.as_deref(), &d.fields)
                })),
            }
        }
    };
    // The recipients are read from the ledger a batch at a time as the
    // sessions need them: memory does not grow with the audience.
    let batches = ClaimedBatches::new(open_ledger(newsroom)?, &stored.id, holder);
    let jobs = Jobs::streamed(total, batches.take(total as usize).map(job));
    let mut options = SendOptions::new(&stored.id, composer.envelope_from());
    let newsletter = stored.newsletter.clone();
    options.last_check = Some(Arc::new(move |email: &str| {
        let ledger = store.lock().map_err(|_| "the suppression check failed")?;
        Ok(ledger
            .is_suppressed(email, &newsletter)?
            .then(|| "suppressed while the edition was sending".to_owned()))
    }));
    options.stop = opts.stop.clone();
    let report = Arc::new(std::sync::Mutex::new(Vec::new()));
    options.relay_report = Some(Arc::clone(&report));
    let sink = LeasedLedger::new(ledger, &stored.id, holder, lease_ttl(newsroom));
    let start = Instant::now();
    let progress = progress_reporter(&stored.id, opts.verbose);
    let result = runtime()?.block_on(deliver(&transport, jobs, options, sink, progress));
    let elapsed = start.elapsed();
    let mut ledger = open_ledger(newsroom)?;
    let (progress, stopped) = match result {
        Ok((p, _sink)) => (p, None),
        // The relay is unreachable for now: nobody was tried, everyone is
        // left for the next run, which the exit code (75) asks for.
        Err(e) if e.is_transient() => {
            tracing::warn!(edition = %stored.id, "not sent, the relay is unavailable: {e}");
            (Progress::default(), None)
        }
        Err(e) => {
            let chain: Vec<String> = anyhow::Error::from(e)
                .chain()
                .map(|c| c.to_string())
                .collect();
            (Progress::default(), Some(chain.join(": ")))
        }
    };
    let tallies = report.lock().map(|r| r.clone()).unwrap_or_default();
    if let Err(e) = ledger.add_relay_tallies(&stored.id, &tallies) {
        tracing::warn!(edition = %stored.id, "cannot record what each relay did: {e:#}");
    }
    let (unsent, elsewhere) = ledger.unsent_here_and_elsewhere(&stored.id, holder)?;
    if unsent == 0 {
        ledger.mark_complete(&stored.id)?;
    }
    let counts = ledger.counts(&stored.id)?;
    // A relay's refusal during the session is a bounce too: a hard one
    // (`550 5.1.1` to RCPT) suppresses the address like a returned DSN.
    for (email, reply) in ledger.failed(&stored.id)? {
        let applied = crate::returns::apply_refusal(
            &mut ledger,
            &stored.id,
            &stored.newsletter,
            &email,
            &reply,
        );
        if let Err(e) = applied {
            tracing::warn!(edition = %stored.id, "cannot record a refusal as a bounce: {e:#}");
        }
    }
    let progress = match stopped {
        Some(_) => Progress {
            total: counts.total(),
            sent: counts.sent,
            deferred: counts.deferred,
            failed: counts.failed,
            in_doubt: counts.in_doubt,
            suppressed: counts.suppressed,
        },
        None => progress,
    };
    Ok(RunResult {
        progress,
        elapsed,
        unsent: unsent.saturating_sub(elsewhere),
        elsewhere,
        stopped,
        limited,
    })
}

/// Sends test copies of a plan's full edition to `to` (not recorded), and
/// says where they went.
fn send_test_copies(
    pipeline: &Pipeline,
    ed: &Edition,
    plan: &Plan,
    to: &[String],
) -> Result<(Progress, String)> {
    let (newsroom, n) = (pipeline.newsroom(), ed.newsletter);
    let composer =
        Arc::new(Composer::new(newsroom, n, &plan.frozen.id, secret(newsroom)?)?.test_copies());
    let mut transport = transport(newsroom, n, plan.frozen.slot_utc)?;
    let via = match &mut transport {
        Transport::Outbox { dir } => {
            *dir = dir.join("test");
            format!(
                "the outbox, {}/",
                display_path(&newsroom.root, dir).display()
            )
        }
        relays => {
            // Each relay's name, or its host: never whatever user part a
            // URL may carry.
            let names: Vec<String> = (relays.relays().iter()).map(|s| s.display_name()).collect();
            match names.len() {
                1 => format!("the relay {}", names[0]),
                _ => format!("the relays {}", names.join(", ")),
            }
        }
    };
    // Rendered as a test copy, whose footer says so instead of claiming
    // that the address is subscribed.
    let marks = Placeholders::new();
    let reader = SubscriberCtx {
        email: marks.mark("email"),
        unsubscribe_url: marks.mark("unsubscribe_url"),
        test_copy: true,
        ..SubscriberCtx::default()
    };
    let r = pipeline.render(ed, &reader).map_err(DiagnosticError)?;
    let content = Arc::new((
        marks.seal(&r.subject, false),
        marks.seal(&r.html, true),
        marks.seal(&r.text, false),
    ));
    let mut jobs = Vec::new();
    for addr in to {
        let email = audience::normalize_email(addr).map_err(|e| anyhow!("--to {addr}: {e}"))?;
        let composer = Arc::clone(&composer);
        let content = Arc::clone(&content);
        let id = plan.frozen.id.clone();
        jobs.push(Job {
            message_id: Some(composer.message_id(&id, &email)),
            email: email.clone(),
            envelope_from: None,
            message: MessageSource::Compose(Box::new(move || {
                let fields = [("name".to_string(), String::new())].into();
                let (s, h, t) = (&content.0, &content.1, &content.2);
                composer.compose(&id, (s, h, t), &email, None, &fields)
            })),
        });
    }
    let options = SendOptions::new(&plan.frozen.id, composer.envelope_from());
    let (p, _) = runtime()?.block_on(deliver(&transport, jobs, options, Discard, |_| {}))?;
    Ok((p, via))
}

/// Test copies are not deliveries: their outcomes go nowhere.
struct Discard;

impl OutcomeSink for Discard {
    type Error = std::convert::Infallible;
    fn record(&mut self, _: &[DeliveryUpdate]) -> Result<(), Self::Error> {
        Ok(())
    }
}
