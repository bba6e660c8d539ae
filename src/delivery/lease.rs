//! The lease that keeps two senders off one edition: who this process is
//! as a holder, and reclaiming a lease from a sender of this machine that
//! died mid-edition (a remote holder's lease expires after [`LEASE_TTL`]).

use std::time::Duration;

use anyhow::Result;

use crate::ledger::{LeaseOutcome, Ledger};

/// How long a sender's lease lasts without renewal (it renews every third).
pub const LEASE_TTL: Duration = Duration::from_secs(60);

/// This process, as a lease holder: `host:pid`.
pub fn holder() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// Whether a lease holder is a process of this machine that no longer runs
/// (a sender killed mid-edition): its lease can be taken at once.
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

/// Acquires the edition's lease, reclaiming it from a dead sender of this
/// machine. `Err(holder)` when another live sender has it.
pub fn lease(ledger: &mut Ledger, edition_id: &str, holder: &str) -> Result<Result<(), String>> {
    match ledger.acquire_lease_reclaiming(edition_id, holder, LEASE_TTL, &holder_is_dead)? {
        LeaseOutcome::Acquired => Ok(Ok(())),
        LeaseOutcome::TakenOver { previous_holder } => {
            tracing::warn!(edition = %edition_id, previous_holder, "took over the edition from a sender that stopped; at most one message per connection of it may be sent twice");
            Ok(Ok(()))
        }
        LeaseOutcome::Busy { holder, expires_at } => Ok(Err(format!(
            "{holder} (lease until {})",
            expires_at.format("%H:%M:%S UTC")
        ))),
    }
}
