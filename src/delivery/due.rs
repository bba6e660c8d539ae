//! What is due at a moment (cron's `send --due`, and `run` on a timer): for
//! each newsletter, the editions earlier runs left unfinished, then every
//! slot since the newest edition the ledger knows (a gap means the sender
//! was down: each such slot is recorded as missed if it is too late), or on
//! a newsletter's very first run only its latest slot. Each newsletter is
//! handled on its own: one failing never stops the others. With
//! `archive.on_send`, a run that sent something rebuilds the web archive.

use std::sync::atomic::Ordering;

use anyhow::Result;
use chrono::{DateTime, Duration, Utc};

use super::run::{EditionOutcome, EditionRun, Options, open_ledger, record_missed, resume, send};
use crate::archive::ArchiveReport;
use crate::config::{Newsletter, Newsroom};
use crate::content::Scope;
use crate::diag::DiagnosticError;
use crate::edition::{Slot, window_start};
use crate::exit::Exit;
use crate::ledger::{EditionState, EditionSummary};
use crate::messages::{Message, human};
use crate::pipeline::Pipeline;

/// How far back `--due` looks for slots it has not seen, when the ledger
/// knows an earlier edition of the newsletter (cron was down, the machine
/// was off): each of them is recorded as missed.
const CATCH_UP_DAYS: i64 = 7;

/// What a due run did, newsletter by newsletter.
pub struct DueReport {
    pub newsletters: Vec<DueNewsletter>,
    /// The web archive rebuilt after sending (`archive.on_send`), when
    /// something was sent.
    pub archive: Option<Result<ArchiveReport>>,
    /// "nothing due at …", in the site's zone, when nothing was done.
    now_local: String,
}

impl DueReport {
    /// The worst outcome: what `send --due` exits with.
    pub fn exit(&self) -> Exit {
        let mut exit = Exit::Ok;
        for n in &self.newsletters {
            match &n.result {
                Ok(editions) => {
                    for e in editions {
                        if let DueEdition::Ran(run) = e {
                            exit = exit.worst(run.outcome.exit());
                        }
                    }
                }
                Err(e) => exit = exit.worst(crate::exit::of_error(e)),
            }
        }
        if let Some(Err(_)) = &self.archive {
            exit = exit.worst(Exit::Failed);
        }
        exit
    }

    /// One line per edition (and its diagnostics), an error per newsletter
    /// that failed, or that nothing was due.
    pub fn messages(&self) -> Vec<Message<'_>> {
        let mut out = Vec::new();
        let mut acted = false;
        for n in &self.newsletters {
            match &n.result {
                Ok(editions) => {
                    for e in editions {
                        acted |= e.acted();
                        match e {
                            DueEdition::Ran(run) => out.extend(run.messages()),
                            DueEdition::WouldResume { id, unsent } => out.push(Message::Summary(
                                format!("{id}: {unsent} recipients left from an earlier run would be retried"),
                            )),
                        }
                    }
                }
                Err(e) => {
                    acted = true;
                    match e.chain().find_map(|c| c.downcast_ref::<DiagnosticError>()) {
                        Some(DiagnosticError(d)) => out.push(Message::Diagnostic(d)),
                        None => {
                            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
                            let line = format!("{}: {}", n.newsletter, chain.join(": "));
                            out.push(Message::Error(line));
                        }
                    }
                }
            }
        }
        if !acted {
            out.push(Message::Summary(format!(
                "nothing due at {}: every edition up to now is sent, skipped or missed",
                self.now_local
            )));
        }
        match &self.archive {
            Some(Ok(a)) => {
                out.extend(a.warnings.iter().map(|w| Message::Warning(w.clone())));
                out.push(Message::Summary(a.summary()));
            }
            Some(Err(e)) => {
                let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
                out.push(Message::Error(format!(
                    "the web archive was not refreshed: {}; `briefing archive` rebuilds it",
                    chain.join(": ")
                )));
            }
            None => {}
        }
        out
    }
}

/// One newsletter's share of a due run: its editions, or the error that
/// stopped it.
pub struct DueNewsletter {
    pub newsletter: String,
    pub result: Result<Vec<DueEdition>>,
}

/// An edition the due run handled.
pub enum DueEdition {
    // Boxed: a run with its plan counts is several times the other variant.
    Ran(Box<EditionRun>),
    /// `--dry-run`: an edition left from an earlier run would be resumed.
    WouldResume {
        id: String,
        unsent: u64,
    },
}

impl DueEdition {
    pub fn acted(&self) -> bool {
        match self {
            DueEdition::Ran(r) => r.outcome.acted(),
            DueEdition::WouldResume { .. } => true,
        }
    }
}

/// A newsletter's editions in the ledger, and its slots due now.
type Known = (Vec<EditionSummary>, Vec<DueSlot>);

/// A slot to send, found by [`slots_due`].
struct DueSlot {
    slot: Slot,
    /// The newsletter has no edition in the ledger at all yet.
    first_run: bool,
}

/// Sends everything due at `now`.
pub fn run_due(newsroom: &Newsroom, now: DateTime<Utc>, opts: &Options) -> DueReport {
    // Which slots each newsletter needs, then one load of the items they can
    // carry for all of them.
    let mut todo: Vec<(&Newsletter, Result<Known>)> = Vec::new();
    for n in newsroom
        .config
        .newsletters
        .iter()
        .filter(|n| n.schedule.is_some())
    {
        todo.push((n, known_and_due(newsroom, n, now)));
    }
    let windows = todo
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .flat_map(|(_, slots)| slots.iter().map(|d| (d.slot.start, d.slot.at)))
        .collect();
    let pipeline = Pipeline::open(newsroom.clone(), &Scope::Windows(windows));
    let mut out = Vec::new();
    for (n, due) in todo {
        if opts.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst)) {
            break;
        }
        let result = due.and_then(|(known, slots)| due_one(&pipeline, n, now, opts, &known, slots));
        out.push(DueNewsletter {
            newsletter: n.id.clone(),
            result,
        });
    }
    // New pages for what went out; nothing changes when nothing was sent.
    let sent = out.iter().any(|n| {
        (n.result.iter().flatten()).any(
            |e| matches!(e, DueEdition::Ran(r) if matches!(r.outcome, EditionOutcome::Sent { .. })),
        )
    });
    let archive = (newsroom.config.archive.as_ref())
        .filter(|a| a.on_send && sent && !opts.dry_run)
        .map(|_| crate::archive::build(newsroom, None));
    let local = now.with_timezone(&newsroom.config.site.timezone);
    DueReport {
        newsletters: out,
        archive,
        now_local: local.format("%Y-%m-%d %H:%M %Z").to_string(),
    }
}

/// The ledger's editions of `n` and the slots due at `now`.
fn known_and_due(newsroom: &Newsroom, n: &Newsletter, now: DateTime<Utc>) -> Result<Known> {
    let known = open_ledger(newsroom)?.editions(Some(&n.id))?;
    let slots = slots_due(n, now, &known);
    Ok((known, slots))
}

/// Slots of `n` due at `now` that the ledger has not seen: since the newest
/// edition it knows (at most [`CATCH_UP_DAYS`] back), or only the latest
/// slot on a first run.
fn slots_due(n: &Newsletter, now: DateTime<Utc>, known: &[EditionSummary]) -> Vec<DueSlot> {
    let Some(schedule) = &n.schedule else {
        return Vec::new();
    };
    let Some(latest) = schedule.prev_slot(n.timezone, now) else {
        return Vec::new();
    };
    let first_run = known.is_empty();
    let mut slots = match known.iter().map(|e| e.slot_utc).max() {
        Some(newest) if newest < latest => {
            let from = newest.max(now - Duration::days(CATCH_UP_DAYS));
            schedule.slots_between(n.timezone, from, now)
        }
        Some(_) => Vec::new(),
        None => vec![latest],
    };
    slots.retain(|s| !known.iter().any(|e| e.slot_utc == *s));
    slots
        .into_iter()
        .map(|at| DueSlot {
            slot: Slot {
                at,
                start: window_start(n, at),
            },
            first_run,
        })
        .collect()
}

/// One newsletter: finish what earlier runs left, then the slots due now.
fn due_one(
    pipeline: &Pipeline,
    n: &Newsletter,
    now: DateTime<Utc>,
    opts: &Options,
    known: &[EditionSummary],
    slots: Vec<DueSlot>,
) -> Result<Vec<DueEdition>> {
    let newsroom = pipeline.newsroom();
    let mut out = Vec::new();
    // Editions started earlier with recipients still pending or deferred.
    for e in known
        .iter()
        .filter(|e| matches!(e.state, EditionState::Frozen | EditionState::Sending))
    {
        if opts.dry_run {
            out.push(DueEdition::WouldResume {
                id: e.id.clone(),
                unsent: e.counts.unsent(),
            });
            continue;
        }
        let run = resume(newsroom, n, &e.id, open_ledger(newsroom)?, opts)?;
        out.push(DueEdition::Ran(Box::new(run)));
    }
    for due in slots {
        let at = due.slot.at;
        if due.first_run && now - at > n.max_delay {
            // The first run for this newsletter: its latest slot passed before
            // briefing ever sent it. Recorded so it is never sent late, but
            // nothing was missed on briefing's watch: not an error.
            let reason = format!(
                "first run for this newsletter; its latest slot was {} ago (max_delay {})",
                human(now - at),
                human(n.max_delay)
            );
            let run = record_missed(newsroom, n, at, reason, true, opts.dry_run)?;
            out.push(DueEdition::Ran(Box::new(run)));
            continue;
        }
        out.push(DueEdition::Ran(Box::new(send(
            pipeline, n, due.slot, now, opts,
        )?)));
    }
    Ok(out)
}

/// When the next slot of any newsletter comes, after `now` (what `run`
/// sleeps until).
pub fn next_slot(newsroom: &Newsroom, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    newsroom
        .config
        .newsletters
        .iter()
        .filter_map(|n| n.schedule.as_ref()?.next_slot(n.timezone, now))
        .min()
}
