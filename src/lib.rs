//! briefing: a newsroom's Markdown items in, email digests out.
//!
//! The pipeline flows one way: `config` + `content` -> `edition` (the items
//! of one newsletter's slot, in sections) -> `render` (HTML and text) ->
//! `delivery` (plan, freeze, send through `mail`, record in the `ledger`).
//! `pipeline` is the façade over the first stages; `serve` answers the links
//! in every message, `inbound` reads the mail that comes back and `archive`
//! publishes the sent editions on the web; `cmd`
//! holds one thin file per command.

pub mod archive;
pub mod audience;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod content;
pub mod delivery;
pub mod diag;
pub mod edition;
pub mod exit;
pub mod inbound;
pub mod ledger;
pub mod mail;
pub mod messages;
pub mod pipeline;
pub mod preview;
pub mod render;
pub mod returns;
pub mod schedule;
pub mod serve;
pub mod signup;
pub mod time;
pub mod tls;
pub mod yaml;
