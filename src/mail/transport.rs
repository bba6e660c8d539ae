//! Where a send delivers to: the outbox (`crate::mail::outbox`) or an SMTP
//! relay (`crate::mail::smtp`). The sender picks its workers from this.

use std::path::PathBuf;

use crate::mail::smtp::SmtpSettings;

/// Where a send delivers to.
#[derive(Debug, Clone)]
pub enum Transport {
    /// Write each message to `<dir>/<message-id>.eml`; nothing leaves the
    /// machine. The only mode in which [`crate::mail::token::DEV_SECRET`] is acceptable.
    Outbox {
        dir: PathBuf,
    },
    Smtp(SmtpSettings),
    /// Several relays, each with its own sessions, rate and backoff, used
    /// by weight: one that refuses connections is backed off on its own
    /// while the others carry on.
    Relays(Vec<SmtpSettings>),
}

impl Transport {
    /// The relays, in the order configured; none for the outbox.
    pub fn relays(&self) -> Vec<SmtpSettings> {
        match self {
            Transport::Outbox { .. } => Vec::new(),
            Transport::Smtp(s) => vec![s.clone()],
            Transport::Relays(all) => all.clone(),
        }
    }
}
