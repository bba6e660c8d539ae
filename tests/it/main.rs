//! The integration tests, in one binary so the crate is linked once. Most
//! drive the `briefing` binary over fixture newsrooms (`tests/fixtures/`);
//! the delivery tests start Postfix's smtp-sink (and a throwaway Postfix for
//! real DSNs). Shared helpers are in `support/`.

mod support;

mod archive;
mod build;
mod check;
mod cli;
mod due;
mod hardening;
mod hosts;
mod inbound;
mod mail_message;
mod mail_smtp;
mod preview;
mod props;
mod render;
mod return_path;
mod send;
mod serve;
mod signup;
