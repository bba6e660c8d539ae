//! briefing: a newsroom's Markdown items in, email digests out.
//!
//! The pipeline flows one way: `config` + `content` -> `edition` (the items
//! of one newsletter's slot, in sections) -> `render` (HTML and text) -> the
//! commands in `cmd` that write or send the result.

pub mod audience;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod content;
pub mod delivery;
pub mod diag;
pub mod edition;
pub mod inbound;
pub mod ledger;
pub mod mail;
pub mod preview;
pub mod render;
pub mod report;
pub mod schedule;
pub mod time;
pub mod yaml;
