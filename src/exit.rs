//! Exit codes from one place. Every command returns an [`Exit`]; an error
//! becomes 1 unless it is a [`UsageError`] (2) or marked [`TryLater`] (75). cron alerting reads these, so
//! their meaning is part of the interface (README, docs/deployment.md).

use std::fmt;

/// How a command ended, as the shell sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exit {
    /// Everything went as asked (0).
    Ok,
    /// Try again later: recipients deferred to the next run, the relay or
    /// the ledger's database unreachable for now (75, EX_TEMPFAIL).
    TempFail,
    /// Something failed and needs a person: invalid config, items or
    /// templates, failed recipients, a missed edition (1).
    Failed,
    /// Bad command-line usage: an unknown flag or newsletter (2).
    Usage,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Failed => 1,
            Exit::Usage => 2,
            Exit::TempFail => 75,
        }
    }

    /// The worse of two: usage over failure over "try again" over success.
    /// `send --due` reports the worst of its newsletters.
    pub fn worst(self, other: Exit) -> Exit {
        let rank = |e: Exit| match e {
            Exit::Ok => 0,
            Exit::TempFail => 1,
            Exit::Failed => 2,
            Exit::Usage => 3,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }

    /// `Failed` when `failed`, else `Ok`.
    pub fn failed_if(failed: bool) -> Exit {
        if failed { Exit::Failed } else { Exit::Ok }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e.code())
    }
}

/// A mistake on the command line (exit code 2), with what to do instead.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// `Err(usage("…"))?` from a command.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(message.into()))
}

/// The context that marks an error as worth retrying as it stands (exit 75):
/// `briefing inbound` under a mail server's pipe, which keeps the message
/// queued and delivers it again instead of bouncing it.
#[derive(Debug)]
pub struct TryLater(pub &'static str);

impl fmt::Display for TryLater {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// The ledger's database could not be reached (a PostgreSQL server down or
/// failing over): nothing was done, and the next run may well succeed.
fn ledger_unreachable(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<crate::ledger::LedgerError>(),
            Some(crate::ledger::LedgerError::Connect { .. } | crate::ledger::LedgerError::Gone)
        )
    })
}

/// The exit code an error ends a command with.
pub fn of_error(e: &anyhow::Error) -> Exit {
    if e.chain().any(|c| c.is::<UsageError>()) {
        Exit::Usage
    } else if e.downcast_ref::<TryLater>().is_some() || ledger_unreachable(e) {
        Exit::TempFail
    } else {
        Exit::Failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_wins_in_either_order() {
        use Exit::*;
        for (a, b, w) in [
            (Ok, TempFail, TempFail),
            (TempFail, Failed, Failed),
            (Failed, Usage, Usage),
            (Ok, Ok, Ok),
        ] {
            assert_eq!(a.worst(b), w);
            assert_eq!(b.worst(a), w);
        }
    }

    #[test]
    fn usage_errors_map_to_2_and_try_later_to_75_even_with_context() {
        use anyhow::Context as _;
        let e: anyhow::Result<()> = Err(usage("no newsletter `x`"));
        let e = e.context("while sending").unwrap_err();
        assert_eq!(of_error(&e), Exit::Usage);
        assert_eq!(of_error(&anyhow::anyhow!("disk full")), Exit::Failed);
        let later = anyhow::anyhow!("database is locked").context(TryLater("nothing recorded"));
        assert_eq!(of_error(&later), Exit::TempFail);
        assert_eq!(Exit::TempFail.code(), 75);
    }
}
