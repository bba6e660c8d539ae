//! One file per subcommand: parse its flags, call the stage, print, map the
//! outcome to an [`Exit`]. Nothing else lives here; no command uses another.
//! Shared: the context every command gets and reading `--at`/`--now`.

pub mod archive;
pub mod build;
pub mod check;
pub mod inbound;
pub mod ledger;
pub mod preview;
pub mod run;
pub mod schedule;
pub mod send;
pub mod serve;
pub mod status;
pub mod subscribers;
pub mod suppress;
pub mod suppressions;

use std::path::PathBuf;

use anyhow::Result;
use chrono::{DateTime, Utc};

use crate::config::{Config, Newsletter, Newsroom};
use crate::diag::did_you_mean;
use crate::exit::usage;
use crate::messages::{Console, plural};
use crate::time::parse_when;

/// What every command gets from the global flags.
pub struct Ctx {
    pub config: PathBuf,
    pub console: Console,
}

impl Ctx {
    /// Loads config.yaml; when it is invalid, prints its diagnostics and
    /// fails.
    pub fn newsroom(&self) -> Result<Newsroom> {
        Newsroom::load(&self.config).map_err(|ds| {
            self.console.diagnostics(&ds);
            anyhow::anyhow!(
                "{}: {} in the config file",
                self.config.display(),
                plural(ds.errors(), "error")
            )
        })
    }
}

/// A CSV field, quoted when it must be (the exports' one writer).
pub fn csv(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Reads a time flag (`--at`, `--now`) in the site's zone; now when absent.
pub fn parse_at(flag: &str, value: Option<&str>, config: &Config) -> Result<DateTime<Utc>> {
    match value {
        None => Ok(Utc::now()),
        Some(s) => parse_when(s, config.site.timezone)
            .map_err(|m| usage(format!("invalid {flag} `{s}`: {m}"))),
    }
}

/// `2026-11-30T08:00` in the site's zone: how to suggest a `--at`.
pub fn at_arg(t: DateTime<Utc>, config: &Config) -> String {
    t.with_timezone(&config.site.timezone)
        .format("%Y-%m-%dT%H:%M")
        .to_string()
}

/// The newsletter `--newsletter ID` names, or a usage error with a suggestion.
pub fn newsletter<'a>(config: &'a Config, id: &str) -> Result<&'a Newsletter> {
    config.newsletter(id).ok_or_else(|| {
        let ids = config.newsletters.iter().map(|n| n.id.as_str());
        let hint = did_you_mean(id, ids.clone())
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        usage(format!(
            "no newsletter `{id}`{hint}; configured: {}",
            ids.collect::<Vec<_>>().join(", ")
        ))
    })
}
