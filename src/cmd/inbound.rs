//! `briefing inbound`: read returned mail (stdin, files or a Maildir),
//! classify and attribute each message, record what it says, print a line
//! each (a JSON line with `--json`, the contract other tools read).

use anyhow::{Context as _, Result};

use super::Ctx;
use crate::cli::InboundArgs;
use crate::delivery::compose::secrets;
use crate::exit::{Exit, TryLater};
use crate::ledger::Ledger;
use crate::returns::{self, Handled, mailbox};

/// Any error is worth a retry: under a mail server's pipe, exit 75 keeps
/// the message queued instead of bouncing it (to the postmaster, for a
/// returned bounce), so a ledger that is locked or a config being edited
/// loses nothing.
pub fn run(ctx: &Ctx, args: &InboundArgs) -> Result<Exit> {
    receive(ctx, args).context(TryLater(
        "stopped; what is not yet recorded is left for the next try (exit 75)",
    ))
}

fn receive(ctx: &Ctx, args: &InboundArgs) -> Result<Exit> {
    let newsroom = ctx.newsroom()?;
    let cx = returns::context(&newsroom, secrets(&newsroom)?, args.recipient.clone());
    // A dry run never creates a ledger; a real one records into it.
    let mut ledger = match args.dry_run {
        true => Ledger::open_existing(&newsroom.config.ledger)?,
        false => Some(Ledger::open(&newsroom.config.ledger)?),
    };
    let messages: Vec<Result<mailbox::Message>> = match (&args.maildir, args.files.as_slice()) {
        (Some(dir), _) => (mailbox::maildir(dir)?.iter())
            .map(|p| mailbox::maildir_message(dir, p))
            .collect(),
        (None, []) => vec![mailbox::stdin()],
        (None, files) => files.iter().map(|f| mailbox::file(f)).collect(),
    };
    let mut exit = Exit::Ok;
    for m in messages {
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                ctx.console.error(&format!("{e:#}"));
                exit = exit.worst(Exit::Failed);
                continue;
            }
        };
        let handled = returns::handle(ledger.as_mut(), &cx, &m.source, &m.raw, args.dry_run)?;
        if !handled.understood() {
            exit = exit.worst(Exit::Failed);
        } else if !args.dry_run {
            m.file_as_handled()?;
        }
        match args.json {
            true => ctx.console.data(&handled.report.to_json_line()),
            false => ctx.console.summary(&line(&handled)),
        }
    }
    Ok(exit)
}

/// What a person reads about one message.
fn line(h: &Handled) -> String {
    let r = &h.report;
    let who: Vec<&str> = r.recipients.iter().map(|x| x.address.as_str()).collect();
    let what = match (h.applied.suppressed.len(), h.applied.counted.len()) {
        _ if !h.understood() => "not understood: kept for a person".to_string(),
        (0, 0) if !h.applied.policy_blocks.is_empty() => {
            "a policy refusal: the relay's reputation, not the subscriber (see status)".to_string()
        }
        (0, 0) => format!("{:?}", r.decision).to_lowercase(),
        (s, 0) => format!("suppressed {s}"),
        (0, c) => format!("soft bounce counted for {c}"),
        (s, c) => format!("suppressed {s}, soft bounce counted for {c}"),
    };
    let edition = r.edition.as_deref().unwrap_or("edition unknown");
    let kind = serde_json::to_value(r.kind).unwrap_or_default();
    format!(
        "{}: {} for {} ({edition}): {what}",
        r.source,
        kind.as_str().unwrap_or("?").replace('_', "-"),
        if who.is_empty() {
            "nobody named".to_string()
        } else {
            who.join(", ")
        }
    )
}
