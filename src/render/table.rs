//! What the HTML and the text part agree on about an item's Markdown table:
//! which cells hold numbers and how each column is aligned. GFM alignment
//! (`---:`) wins; a column without one whose cells are all numbers is
//! right-aligned, as figures are in print.

use pulldown_cmark::Alignment;

/// How a column is aligned in both parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Center,
    Right,
}

impl Align {
    pub fn css(self) -> &'static str {
        match self {
            Align::Left => "left",
            Align::Center => "center",
            Align::Right => "right",
        }
    }
}

/// Whether a cell is a figure: `6,412.8`, `+1.4%`, `−0.09 pt`, `$68.40`,
/// `€750m`, `1.2bn`. A reader compares these down a column, so they are
/// right-aligned and never broken across lines.
pub fn is_number(cell: &str) -> bool {
    let s = cell.trim();
    let s = s.trim_start_matches(['+', '-', '\u{2212}', '\u{b1}', '~', '\u{2248}']);
    let s = s.trim_start_matches(['$', '\u{20ac}', '\u{a3}', '\u{a5}', '\u{20b9}']);
    let mut chars = s.char_indices().peekable();
    // A figure starts with a digit (or `.5`).
    match chars.peek() {
        Some((_, c)) if c.is_ascii_digit() => {}
        Some((_, '.')) if s[1..].starts_with(|c: char| c.is_ascii_digit()) => {}
        _ => return false,
    }
    let mut end = s.len();
    for (i, c) in chars {
        let part_of_number = c.is_ascii_digit()
            || matches!(c, ',' | '.' | '\u{2009}' | '\u{202f}' | '\u{a0}' | '\'');
        if !part_of_number {
            end = i;
            break;
        }
    }
    let unit = s[end..].trim_start();
    // A unit after the figure: a percent sign, or a short abbreviation
    // (`pt`, `bp`, `bn`, `m`, `x`, `°C`), never a word.
    unit.is_empty()
        || unit == "%"
        || unit == "\u{2030}"
        || (unit.chars().count() <= 3
            && unit
                .chars()
                .all(|c| c.is_ascii_alphabetic() || c == '\u{b0}' || c == '%'))
}

/// A cell that stands for "no value" (`—`, `–`, `-`, `n/a`, empty): it
/// does not stop a column of figures from being one.
pub fn is_blank(cell: &str) -> bool {
    matches!(
        cell.trim(),
        "" | "-" | "\u{2013}" | "\u{2014}" | "n/a" | "N/A" | "\u{2026}"
    )
}

/// Each column's alignment: the table's own (GFM), else right for a column
/// of figures, else left. `body` holds the cells' plain text, row by row.
pub fn alignments(gfm: &[Alignment], body: &[Vec<String>]) -> Vec<Align> {
    let cols = gfm.len().max(body.iter().map(Vec::len).max().unwrap_or(0));
    (0..cols)
        .map(|c| match gfm.get(c).copied().unwrap_or(Alignment::None) {
            Alignment::Left => Align::Left,
            Alignment::Center => Align::Center,
            Alignment::Right => Align::Right,
            Alignment::None => {
                let cells: Vec<&str> = body
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(String::as_str)
                    .filter(|s| !is_blank(s))
                    .collect();
                if !cells.is_empty() && cells.iter().all(|s| is_number(s)) {
                    Align::Right
                } else {
                    Align::Left
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_recognised() {
        for n in [
            "6,412.8",
            "+1.4%",
            "\u{2212}0.09 pt",
            "$68.40",
            "4.06%",
            "-4.8%",
            "14,200",
            ".5",
            "1.2bn",
            "\u{20ac}750m",
            "40\u{b0}C",
            "3x",
        ] {
            assert!(is_number(n), "{n}");
        }
        for t in [
            "Large-cap index",
            "10-year yield",
            "",
            "%",
            "12 points",
            "2026 budget",
            "n/a",
        ] {
            assert!(!is_number(t), "{t}");
        }
    }

    #[test]
    fn columns_of_figures_are_right_aligned_unless_the_table_says_otherwise() {
        let body = vec![
            vec!["Large-cap".to_string(), "6,412.8".into(), "\u{2014}".into()],
            vec!["Oil".to_string(), "$68.40".into(), "+1%".into()],
        ];
        assert_eq!(
            alignments(&[Alignment::None; 3], &body),
            vec![Align::Left, Align::Right, Align::Right]
        );
        assert_eq!(
            alignments(
                &[Alignment::Center, Alignment::Left, Alignment::None],
                &body
            ),
            vec![Align::Center, Align::Left, Align::Right]
        );
    }
}
