//! briefing: a newsroom's Markdown items in, email digests out.
//!
//! The pipeline flows one way: `config` + `content` -> `edition` (the items
//! of one newsletter's slot, in sections) -> `render` (HTML and text) -> the
//! commands in `cmd` that write or send the result.

// Diagnostics travel in `Err` on the cold path only; boxing them would buy
// nothing and cost every call site a deref.
#![allow(clippy::result_large_err)]

pub mod audience;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod content;
pub mod diag;
pub mod edition;
pub mod ledger;
pub mod mail;
pub mod render;
pub mod report;
pub mod schedule;
pub mod time;
pub mod yaml;
