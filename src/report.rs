//! What a rendered edition weighs: its HTML size against Gmail's clipping
//! limit, the text part's line lengths, the Smart Brevity count.

use crate::config::Newsletter;
use crate::diag::Diagnostic;
use crate::render::{GMAIL_CLIP_BYTES, HTML_WARN_BYTES, Rendered, Renderer, TEXT_WIDTH};

/// `42.1 KB`.
pub fn kb(bytes: usize) -> String {
    format!("{:.1} KB", bytes as f64 / 1024.0)
}

/// Warnings about a rendered edition a newsroom should act on before sending.
pub fn size_warnings(renderer: &Renderer, n: &Newsletter, r: &Rendered) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let html_path = renderer.template_path(&format!("{}.html", n.template));
    let size = r.html.len();
    if size > GMAIL_CLIP_BYTES {
        out.push(Diagnostic::warning(&html_path, format!("newsletter `{}`: the HTML part is {}, over Gmail's ~102 KB limit: Gmail will clip it and hide the rest (and the unsubscribe link) behind \"View entire message\"", n.id, kb(size))));
    } else if size > HTML_WARN_BYTES {
        out.push(Diagnostic::warning(
            &html_path,
            format!(
                "newsletter `{}`: the HTML part is {}, close to Gmail's ~102 KB clipping limit",
                n.id,
                kb(size)
            ),
        ));
    }
    let long = r
        .text
        .lines()
        .filter(|l| l.chars().count() > TEXT_WIDTH)
        .count();
    if long > 0 {
        let txt_path = renderer.template_path(&format!("{}.txt", n.template));
        out.push(Diagnostic::warning(txt_path, format!("newsletter `{}`: {long} line(s) of the text part are longer than {TEXT_WIDTH} characters", n.id)));
    }
    out
}
