//! The public web archive and its Atom feeds, built from the ledger's sent
//! editions only (what was actually sent, never drafts or unsent builds):
//! one page per edition at a stable URL, an index per newsletter, the list
//! of newsletters, a feed per newsletter. Each page is the anonymous web
//! rendering frozen with its edition. `layout` says where everything
//! lives, for the writer, the links in every email and a server alike.

pub mod layout;

pub use layout::{Resolved, resolve};
