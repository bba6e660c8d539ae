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
pub use smtp_sink::{Dump, SmtpSink};
