//! Items: the Markdown files under `content/`. Splitting, typed front-matter
//! with file-relative diagnostics, and loading a whole newsroom in parallel.

pub mod body;
mod front_matter;
pub mod lead_ins;
mod load;
pub mod split;

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use front_matter::{ParseCtx, is_safe_url, prescan_date};
pub use load::{
    Library, Scope, duplicate_diag, duplicate_ids, item_files, item_id, load, parse_ctx,
    read_item_text,
};

/// Parses and validates one item file's text: its front-matter (typed,
/// positions relative to the file) and its body.
pub fn parse_item(
    id: &str,
    path: &std::path::Path,
    text: &str,
    ctx: &ParseCtx,
) -> Result<Item, Vec<crate::diag::Diagnostic>> {
    let item = front_matter::parse_item(id, path, text, ctx)?;
    body::check_nesting(&item.body, item.body_line, path, text).map_err(|d| vec![d])?;
    Ok(item)
}

/// One briefing item, validated.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// Path under `content/` without `.md`, with `/` separators.
    pub id: String,
    /// The file, relative to the newsroom root (for diagnostics and links back).
    pub source: PathBuf,
    pub title: String,
    pub date: DateTime<Utc>,
    /// Region ids; the first is the primary one.
    pub regions: Vec<String>,
    /// Topic ids; the first is the primary one.
    pub topics: Vec<String>,
    pub priority: i64,
    pub summary: String,
    pub authors: Vec<String>,
    pub image: Option<Image>,
    pub link: Option<String>,
    /// When set, the item goes to exactly these newsletters.
    pub newsletters: Option<Vec<String>>,
    pub draft: bool,
    pub expires: Option<DateTime<Utc>>,
    pub tags: Vec<String>,
    pub extra: serde_json::Value,
    /// The Markdown body.
    pub body: String,
    /// 1-based line of the body's first line in the file.
    pub body_line: usize,
    /// Problems that do not stop the item from loading (`check` reports them).
    #[serde(skip)]
    pub warnings: Vec<crate::diag::Diagnostic>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Image {
    pub src: String,
    pub alt: String,
    pub credit: Option<String>,
}
