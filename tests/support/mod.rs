//! Support for tests that need real mail servers.

pub mod postfix;
