//! A rendered edition as files: `email.html`, `email.txt` and an
//! `edition.json` describing it (what `build` writes for people and scripts
//! to inspect before anything is sent).

use std::fs;
use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::config::Newsroom;
use crate::edition::Edition;
use crate::render::Rendered;

pub fn write_edition(
    dir: &Path,
    newsroom: &Newsroom,
    ed: &Edition,
    r: &Rendered,
) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::write(dir.join("email.html"), &r.html)?;
    fs::write(dir.join("email.txt"), &r.text)?;
    let mut hash = Sha256::new();
    hash.update(r.html.as_bytes());
    hash.update([0]);
    hash.update(r.text.as_bytes());
    let n = ed.newsletter;
    let meta = json!({
        "newsletter": n.id,
        "edition": ed.id,
        "slot": ed.slot.at.with_timezone(&n.timezone).to_rfc3339(),
        "slot_utc": ed.slot.at.to_rfc3339(),
        "window_start": ed.slot.start.with_timezone(&n.timezone).to_rfc3339(),
        "timezone": n.timezone.name(),
        "subject": r.subject,
        "preheader": r.preheader,
        "items": ed.items().map(|p| p.item.id.as_str()).collect::<Vec<_>>(),
        "sections": ed.sections.iter().map(|s| json!({"id": s.id(), "title": s.title(), "items": s.items.iter().map(|p| p.item.id.as_str()).collect::<Vec<_>>()})).collect::<Vec<_>>(),
        "sizes": {"html_bytes": r.html.len(), "text_bytes": r.text.len()},
        "word_count": r.word_count,
        "reading_minutes": r.reading_minutes,
        "content_hash": format!("sha256:{}", hex::encode(hash.finalize())),
        "config": newsroom.config_path.display().to_string(),
    });
    let text = serde_json::to_string_pretty(&meta).map_err(std::io::Error::other)?;
    fs::write(dir.join("edition.json"), text + "\n")
}
