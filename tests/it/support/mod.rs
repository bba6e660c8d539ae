//! What the integration tests share: a builder over fixture newsrooms that
//! runs the binary, servers as processes, Postfix's smtp-sink and a
//! throwaway Postfix, messages and an independent DKIM verifier.

pub mod dkim;
pub mod fs;
pub mod message;
pub mod newsroom;
pub mod postfix;
pub mod server;
pub mod smtp_sink;

pub use newsroom::{Newsroom, Run, wait_until};

/// `send` of the delivery fixture's Monday 06:00 morning brief, a minute
/// after its slot.
pub const SEND_AM: [&str; 7] = [
    "send",
    "-n",
    "am",
    "--at",
    "2026-11-30T08:00",
    "--now",
    "2026-11-30T06:01",
];
pub use smtp_sink::{Dump, SmtpSink};
