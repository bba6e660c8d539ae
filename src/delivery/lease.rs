//! The leases under which senders share an edition: who this process is as
//! a holder, joining an edition's senders, and telling a sender of this
//! machine that died mid-edition (whose lease ends at once; a remote
//! sender's ends when it expires, `delivery.lease` after its last renewal).

use std::time::Duration;

use anyhow::Result;

use crate::ledger::{Claimed, Delivery, Ledger};

/// How long a sender's lease lasts without renewal (it renews every
/// third), unless `delivery.lease` says otherwise.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// This process, as a lease holder: `host:pid`, the host being
/// `BRIEFING_HOST_ID` when set (where host names repeat, as in containers)
/// and the machine's name otherwise.
pub fn holder() -> String {
    let host = std::env::var("BRIEFING_HOST_ID")
        .ok()
        .filter(|h| !h.is_empty() && !h.contains(':'))
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// Whether a lease holder is a process of this host that no longer runs
/// (a sender killed mid-edition): its lease can be ended at once.
pub fn holder_is_dead(holder: &str) -> bool {
    let me = self::holder();
    let my_host = me.rsplit_once(':').map(|(h, _)| h);
    match holder.rsplit_once(':') {
        Some((host, pid)) if Some(host) == my_host => match pid.parse::<u32>() {
            Ok(pid) => !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            Err(_) => false,
        },
        _ => false,
    }
}

fn took_over(edition_id: &str, holders: &[String]) {
    for previous_holder in holders {
        tracing::warn!(edition = %edition_id, previous_holder, "took over the edition from a sender that stopped; at most one message per connection of it may be sent twice");
    }
}

/// Joins the edition's senders, ending the leases of those that stopped.
pub fn join(ledger: &mut Ledger, edition_id: &str, holder: &str, ttl: Duration) -> Result<()> {
    let joined = ledger.join_edition(edition_id, holder, ttl, &holder_is_dead)?;
    took_over(edition_id, &joined.took_over);
    if !joined.others.is_empty() {
        tracing::info!(edition = %edition_id, others = %joined.others.join(", "), "sharing the edition with other senders");
    }
    Ok(())
}

/// The next batch of recipients claimed for `holder`.
pub fn claim(
    ledger: &mut Ledger,
    edition_id: &str,
    holder: &str,
    limit: usize,
) -> Result<Vec<Delivery>> {
    let Claimed {
        deliveries,
        took_over: holders,
    } = ledger.claim_batch(edition_id, holder, limit, &holder_is_dead)?;
    took_over(edition_id, &holders);
    Ok(deliveries)
}
