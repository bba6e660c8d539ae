//! `briefing suppress` and `briefing unsuppress`: the people who run the
//! list stop or restart mail to one address, recorded in the ledger.

use anyhow::Result;
use chrono::Utc;
use serde_json::json;

use super::{Ctx, newsletter};
use crate::audience::parse_address;
use crate::cli::{SuppressArgs, UnsuppressArgs};
use crate::exit::{Exit, usage};
use crate::ledger::{
    Ledger, ReturnEvent, ReturnKind, Suppression, SuppressionReason, SuppressionScope,
};

fn scope(ctx: &Ctx, id: Option<&str>) -> Result<SuppressionScope> {
    let Some(id) = id else {
        return Ok(SuppressionScope::All);
    };
    let newsroom = ctx.newsroom()?;
    Ok(SuppressionScope::Newsletter(
        newsletter(&newsroom.config, id)?.id.clone(),
    ))
}

fn address(raw: &str) -> Result<String> {
    parse_address(raw)
        .map(|a| a.to_ascii_lowercase())
        .map_err(|p| usage(format!("`{raw}` is not an address: {p}")))
}

pub fn suppress(ctx: &Ctx, args: &SuppressArgs) -> Result<Exit> {
    let newsroom = ctx.newsroom()?;
    let address = address(&args.address)?;
    let scope = scope(ctx, args.newsletter.as_deref())?;
    let mut ledger = Ledger::open(&newsroom.config.ledger)?;
    let fresh = ledger.suppress(&Suppression {
        address: address.clone(),
        scope: scope.clone(),
        reason: SuppressionReason::Manual,
        created_at: Utc::now(),
        evidence: json!({"note": args.reason}),
    })?;
    ctx.console.summary(&match fresh {
        true => format!("suppressed {address} for {scope}"),
        false => format!("{address} was already suppressed for {scope}; kept as it was"),
    });
    Ok(Exit::Ok)
}

pub fn unsuppress(ctx: &Ctx, args: &UnsuppressArgs) -> Result<Exit> {
    let newsroom = ctx.newsroom()?;
    let address = address(&args.address)?;
    let scope = match &args.newsletter {
        Some(id) => Some(scope(ctx, Some(id))?),
        None => None,
    };
    let mut ledger = Ledger::open(&newsroom.config.ledger)?;
    let (lifted, kept) = ledger.unsuppress(&address, scope.as_ref(), args.force)?;
    for s in &lifted {
        ledger.record_event(&ReturnEvent {
            address: address.clone(),
            newsletter: match &s.scope {
                SuppressionScope::Newsletter(n) => Some(n.clone()),
                SuppressionScope::All => None,
            },
            edition_id: None,
            kind: ReturnKind::Resubscribe,
            at: Utc::now(),
            evidence: json!({"lifted": s.reason, "by": "unsuppress"}),
        })?;
        ctx.console.summary(&format!(
            "{address} may get {} again ({} lifted)",
            s.scope, s.reason
        ));
    }
    for s in &kept {
        ctx.console.warn(&format!(
            "{address} stays suppressed for {}: a {} is not lifted without --force",
            s.scope, s.reason
        ));
    }
    if lifted.is_empty() && kept.is_empty() {
        ctx.console.summary(&format!("{address} is not suppressed"));
    }
    Ok(if kept.is_empty() {
        Exit::Ok
    } else {
        Exit::Failed
    })
}
