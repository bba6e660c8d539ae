//! The reader pages, plain HTML in the newsroom's name: no script, one
//! stylesheet inline (allowed by its hash alone), every form an ordinary
//! POST to the page's own link, so that they work in any browser and mail
//! app view. Everything from the newsroom or the request goes through
//! `esc`.

use std::fmt::Write as _;
use std::sync::LazyLock;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::link::{Reader, Refusal};
use super::{Letter, Lift, Standing};
use crate::config::Term;
use crate::ledger::{Suppression, SuppressionReason};
use crate::render::escape_html as esc;

const CSS: &str = include_str!("assets/serve.css");

/// The pages' Content-Security-Policy: nothing but the inline stylesheet,
/// forms that post only to this site, never framed (a page whose one button
/// unsubscribes must not be clickjacked), no `<base>` to redirect forms.
pub static CSP: LazyLock<String> = LazyLock::new(|| {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(CSS));
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
});

/// What every page of one reader shows: whose newsletter, for whom, and
/// the links between the pages.
pub struct Ctx<'a> {
    pub site: &'a str,
    pub language: &'a str,
    pub letter: &'a Letter,
    pub reader: &'a Reader,
    /// The preferences page's link for this reader.
    pub preferences_url: String,
}

impl Ctx<'_> {
    /// The `action` of a form that posts back to the page it is on, with
    /// the reader's link.
    fn action(&self) -> String {
        esc(&format!("?{}", self.reader.query()))
    }

    fn form(&self, out: &mut String, action: &str, label: &str, class: &str) {
        let _ = writeln!(
            out,
            "<form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"action\" value=\"{action}\"><button type=\"submit\" class=\"{class}\">{}</button></form>",
            self.action(),
            esc(label)
        );
    }

    fn preferences_link(&self, out: &mut String, text: &str) {
        let _ = writeln!(
            out,
            "<p><a href=\"{}\">{}</a></p>",
            esc(&self.preferences_url),
            esc(text)
        );
    }
}

pub(super) fn layout(site: &str, language: &str, state: &str, title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"{lang}\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<meta name=\"robots\" content=\"noindex, nofollow\">\n<title>{title} · {site}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<header><p class=\"site\">{site}</p></header>\n<main data-state=\"{state}\">\n{body}</main>\n</body>\n</html>\n",
        lang = esc(language),
        title = esc(title),
        site = esc(site),
    )
}

/// Why a reader no longer gets mail, in their words.
fn because(reason: SuppressionReason) -> &'static str {
    match reason {
        SuppressionReason::OneClick | SuppressionReason::Link | SuppressionReason::Mailto => {
            "you asked to unsubscribe"
        }
        SuppressionReason::HardBounce | SuppressionReason::SoftBounce => {
            "mail to this address could not be delivered"
        }
        SuppressionReason::Complaint => "this address reported our mail as spam",
        SuppressionReason::Manual | SuppressionReason::File => {
            "the newsroom stopped mailing this address"
        }
    }
}

fn since(s: &Suppression) -> String {
    s.created_at.format("%-d %B %Y").to_string()
}

/// The unsubscribe link opened (GET): a question with one button while the
/// reader gets the newsletter, where they stand otherwise. Link scanners
/// open every link: opening it never unsubscribes.
pub fn unsubscribe_page(c: &Ctx, standing: &Standing) -> String {
    if let Some(s) = &standing.newsletter {
        return unsubscribed(c, s, false);
    }
    let (name, site, email) = (esc(&c.letter.name), esc(c.site), esc(&c.reader.email));
    let mut b = String::new();
    if let Some(all) = &standing.all {
        let _ = write!(
            b,
            "<h1>You are unsubscribed</h1>\n<p>{email} gets none of {site}'s newsletters, {name} included, since {}: {}.</p>\n",
            since(all),
            because(all.reason)
        );
        c.preferences_link(&mut b, "Manage your preferences");
        return layout(c.site, c.language, "unsubscribed-all", "Unsubscribed", &b);
    }
    let _ = write!(
        b,
        "<h1>Unsubscribe from {name}?</h1>\n<p>{email} will no longer get {name} from {site}.</p>\n"
    );
    c.form(&mut b, "unsubscribe", "Unsubscribe", "primary");
    c.preferences_link(&mut b, "Or choose which sections you get instead");
    layout(
        c.site,
        c.language,
        "confirm",
        &format!("Unsubscribe from {}", c.letter.name),
        &b,
    )
}

/// After an unsubscribe (or when the link is opened again): done, with an
/// undo while the reader may lift it themselves.
pub fn unsubscribed(c: &Ctx, s: &Suppression, just_now: bool) -> String {
    let (name, site, email) = (esc(&c.letter.name), esc(c.site), esc(&c.reader.email));
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>You are unsubscribed</h1>\n<p role=\"status\">{email} will get no more {name} from {site}.</p>\n"
    );
    if !just_now {
        let _ = writeln!(b, "<p>Since {}: {}.</p>", since(s), because(s.reason));
    }
    if s.reason.is_the_readers_own() {
        c.form(
            &mut b,
            "resubscribe",
            "Undo: subscribe me again",
            "secondary",
        );
    }
    c.preferences_link(&mut b, "Manage your preferences");
    layout(c.site, c.language, "unsubscribed", "Unsubscribed", &b)
}

/// After asking to be subscribed again from the unsubscribe page.
pub fn resubscribed(c: &Ctx, lift: Lift, standing: &Standing) -> String {
    let (name, site, email) = (esc(&c.letter.name), esc(c.site), esc(&c.reader.email));
    let mut b = String::new();
    let state = match lift {
        Lift::Kept(reason) => {
            let _ = write!(
                b,
                "<h1>We cannot subscribe you again here</h1>\n<p role=\"status\">{site} stopped sending {name} to {email} because {}. Write to the newsroom to be subscribed again.</p>\n",
                because(reason)
            );
            "kept"
        }
        Lift::Lifted | Lift::NotSuppressed => {
            let _ = write!(
                b,
                "<h1>You are subscribed</h1>\n<p role=\"status\">{email} gets {name} again from the next edition.</p>\n"
            );
            if standing.all.is_some() {
                let _ = writeln!(
                    b,
                    "<p class=\"error\">But you are unsubscribed from all of {site}'s newsletters: subscribe to them again on your preferences page.</p>"
                );
            }
            "subscribed"
        }
    };
    c.preferences_link(&mut b, "Manage your preferences");
    layout(c.site, c.language, state, "Subscription", &b)
}

/// What a preferences page says at its top after a form was sent.
pub enum Notice<'a> {
    Saved,
    Unsubscribed,
    UnsubscribedAll,
    Lifted(Lift),
    /// The form was refused; nothing was saved.
    Error(&'a str),
}

/// The preferences page: where the reader stands, the sections to choose
/// from, and unsubscribing from this newsletter or from all.
pub fn preferences_page(c: &Ctx, standing: &Standing, notice: Option<Notice>) -> String {
    let (name, site, email) = (esc(&c.letter.name), esc(c.site), esc(&c.reader.email));
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>{name}: your preferences</h1>\n<p class=\"for\">For {email}.</p>\n"
    );
    match notice {
        Some(Notice::Saved) => {
            let _ = writeln!(
                b,
                "<p class=\"notice\" role=\"status\">Saved. From the next edition you get {}.</p>",
                esc(&sections_text(c.letter, standing))
            );
        }
        Some(Notice::Unsubscribed) => {
            let _ = writeln!(
                b,
                "<p class=\"notice\" role=\"status\">You are unsubscribed from {name}.</p>"
            );
        }
        Some(Notice::UnsubscribedAll) => {
            let _ = writeln!(
                b,
                "<p class=\"notice\" role=\"status\">You are unsubscribed from all of {site}'s newsletters.</p>"
            );
        }
        Some(Notice::Lifted(Lift::Kept(reason))) => {
            let _ = writeln!(
                b,
                "<p class=\"error\" role=\"alert\">We cannot subscribe you again here: {}. Write to the newsroom.</p>",
                because(reason)
            );
        }
        Some(Notice::Lifted(_)) => {
            let _ = writeln!(
                b,
                "<p class=\"notice\" role=\"status\">You are subscribed again.</p>"
            );
        }
        Some(Notice::Error(m)) => {
            let _ = writeln!(b, "<p class=\"error\" role=\"alert\">{}</p>", esc(m));
        }
        None => {}
    }

    // Where they stand.
    b.push_str("<section class=\"standing\">\n");
    match (&standing.newsletter, &standing.all) {
        (_, Some(all)) => {
            let _ = writeln!(
                b,
                "<p>You get none of {site}'s newsletters, since {}: {}.</p>",
                since(all),
                because(all.reason)
            );
            if all.reason.is_the_readers_own() {
                c.form(
                    &mut b,
                    "resubscribe-all",
                    &format!("Subscribe me again to {}'s newsletters", c.site),
                    "secondary",
                );
            }
        }
        (Some(s), None) => {
            let _ = writeln!(
                b,
                "<p>You are unsubscribed from {name}, since {}: {}.</p>",
                since(s),
                because(s.reason)
            );
            if s.reason.is_the_readers_own() {
                c.form(
                    &mut b,
                    "resubscribe",
                    &format!("Subscribe me again to {}", c.letter.name),
                    "secondary",
                );
            }
        }
        (None, None) => {
            let _ = writeln!(
                b,
                "<p>You get {name}: {}.</p>",
                esc(&sections_text(c.letter, standing))
            );
        }
    }
    b.push_str("</section>\n");

    // The sections.
    if c.letter.offers_regions() || c.letter.offers_topics() {
        let _ = write!(
            b,
            "<form method=\"post\" action=\"{}\" class=\"sections\">\n<input type=\"hidden\" name=\"action\" value=\"save\">\n",
            c.action()
        );
        if c.letter.offers_regions() {
            fieldset(
                &mut b,
                "Regions",
                "region",
                &c.letter.regions,
                &standing.sections.regions,
            );
        }
        if c.letter.offers_topics() {
            fieldset(
                &mut b,
                "Topics",
                "topic",
                &c.letter.topics,
                &standing.sections.topics,
            );
        }
        b.push_str("<button type=\"submit\" class=\"primary\">Save my choices</button>\n</form>\n");
    } else {
        let _ = writeln!(b, "<p>{name} has no sections to choose from.</p>");
    }

    // Leaving.
    if standing.newsletter.is_none() || standing.all.is_none() {
        b.push_str("<section class=\"leave\">\n<h2>Unsubscribe</h2>\n");
        if standing.newsletter.is_none() && standing.all.is_none() {
            c.form(
                &mut b,
                "unsubscribe",
                &format!("Unsubscribe from {}", c.letter.name),
                "secondary",
            );
        }
        if standing.all.is_none() {
            c.form(
                &mut b,
                "unsubscribe-all",
                &format!("Unsubscribe from all of {}'s newsletters", c.site),
                "secondary",
            );
        }
        b.push_str("</section>\n");
    }
    layout(
        c.site,
        c.language,
        "preferences",
        &format!("{}: your preferences", c.letter.name),
        &b,
    )
}

fn fieldset(b: &mut String, legend: &str, name: &str, offered: &[Term], chosen: &[String]) {
    let _ = write!(b, "<fieldset>\n<legend>{legend}</legend>\n");
    for t in offered {
        let checked = if chosen.is_empty() || chosen.contains(&t.id) {
            " checked"
        } else {
            ""
        };
        let _ = writeln!(
            b,
            "<label><input type=\"checkbox\" name=\"{name}\" value=\"{}\"{checked}> {}</label>",
            esc(&t.id),
            esc(&t.name)
        );
    }
    b.push_str("</fieldset>\n");
}

/// "every section", or "National, World · Politics".
fn sections_text(letter: &Letter, standing: &Standing) -> String {
    let names = |offered: &[Term], chosen: &[String], shown: bool| -> Option<String> {
        if !shown || chosen.is_empty() {
            return None;
        }
        let picked: Vec<&str> = (offered.iter())
            .filter(|t| chosen.contains(&t.id))
            .map(|t| t.name.as_str())
            .collect();
        Some(match picked.is_empty() {
            true => "none".into(),
            false => picked.join(", "),
        })
    };
    let p = &standing.sections;
    let parts: Vec<String> = [
        names(&letter.regions, &p.regions, letter.offers_regions()),
        names(&letter.topics, &p.topics, letter.offers_topics()),
    ]
    .into_iter()
    .flatten()
    .collect();
    match parts.is_empty() {
        true => "every section".into(),
        false => format!("only {}", parts.join(" · ")),
    }
}

/// A link that is not one of ours (400 or 403): nothing was done.
pub fn refused(site: &str, language: &str, why: Refusal) -> String {
    let b = match why {
        Refusal::Malformed(m) => format!(
            "<h1>This link is incomplete</h1>\n<p>{}. Nothing was changed. Open the link from the email again, or copy all of it into the address bar.</p>\n",
            esc(&capitalised(m))
        ),
        Refusal::Forged => "<h1>This link is not valid</h1>\n<p>It was changed, or it comes from an old email whose links no longer work. Nothing was changed. Use the unsubscribe link of a recent email.</p>\n".to_string(),
    };
    layout(site, language, "refused", "Link not valid", &b)
}

/// A newsletter the link names that this newsroom no longer has.
pub fn gone(site: &str, language: &str) -> String {
    layout(
        site,
        language,
        "gone",
        "Newsletter not found",
        "<h1>This newsletter is no longer sent</h1>\n<p>You will get no more of it.</p>\n",
    )
}

pub fn not_found(site: &str, language: &str) -> String {
    layout(
        site,
        language,
        "not-found",
        "Not found",
        "<h1>Not found</h1>\n<p>There is no page at this address.</p>\n",
    )
}

/// The ledger did not answer in time: nothing is claimed to be done. It
/// may still get done (the work was queued); a second try is harmless.
pub fn unavailable(site: &str, language: &str) -> String {
    layout(
        site,
        language,
        "unavailable",
        "Try again",
        "<h1>Please try again in a minute</h1>\n<p>We could not confirm your choice just now. Sending it again does no harm.</p>\n",
    )
}

/// A request the server cannot take (too large, not a form it reads).
pub fn bad_request(site: &str, language: &str, status: u16) -> String {
    layout(
        site,
        language,
        "bad-request",
        "Not understood",
        &format!(
            "<h1>This request was not understood</h1>\n<p>Nothing was changed (HTTP {status}).</p>\n"
        ),
    )
}

pub(super) fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Preferences, SuppressionScope};
    use chrono::Utc;

    fn letter() -> Letter {
        Letter {
            id: "am".into(),
            name: "Morning <Brief> & \"Co\"".into(),
            regions: vec![
                Term {
                    id: "national".into(),
                    name: "National".into(),
                },
                Term {
                    id: "world".into(),
                    name: "World <b>".into(),
                },
            ],
            topics: vec![
                Term {
                    id: "politics".into(),
                    name: "Politics".into(),
                },
                Term {
                    id: "tech".into(),
                    name: "Tech".into(),
                },
            ],
            subscribers: None,
        }
    }

    fn reader() -> Reader {
        Reader {
            newsletter: "am".into(),
            email: "o'neil+<x>@example.com".into(),
            token: "AAAAAAAAAAAAAAAAAAAAAA".into(),
        }
    }

    fn page(f: impl FnOnce(&Ctx) -> String) -> String {
        let (l, r) = (letter(), reader());
        let c = Ctx {
            site: "The <i>Daily</i>",
            language: "en\"x",
            letter: &l,
            reader: &r,
            preferences_url: "https://news.example.com/preferences?n=am&e=x\"".into(),
        };
        f(&c)
    }

    fn suppression(reason: SuppressionReason) -> Suppression {
        Suppression {
            address: "x@example.com".into(),
            scope: SuppressionScope::Newsletter("am".into()),
            reason,
            created_at: Utc::now(),
            evidence: serde_json::Value::Null,
        }
    }

    /// No markup from the newsroom or the link survives unescaped.
    fn assert_escaped(html: &str) {
        for raw in ["<Brief>", "<i>Daily", "<b>", "+<x>", "en\"x", "x\"\""] {
            assert!(!html.contains(raw), "{raw} unescaped in\n{html}");
        }
        assert!(!html.contains("<script"), "{html}");
    }

    #[test]
    fn every_page_escapes_what_it_shows() {
        let standing = Standing::default();
        for html in [
            page(|c| unsubscribe_page(c, &standing)),
            page(|c| unsubscribed(c, &suppression(SuppressionReason::OneClick), true)),
            page(|c| resubscribed(c, Lift::Lifted, &standing)),
            page(|c| preferences_page(c, &standing, Some(Notice::Error("<oops>")))),
            refused("The <i>Daily</i>", "en\"x", Refusal::Forged),
            gone("The <i>Daily</i>", "en\"x"),
        ] {
            assert_escaped(&html);
            assert!(html.contains("The &lt;i&gt;Daily&lt;/i&gt;"), "{html}");
        }
    }

    #[test]
    fn the_confirm_page_posts_back_to_its_own_link() {
        let html = page(|c| unsubscribe_page(c, &Standing::default()));
        assert!(html.contains("data-state=\"confirm\""), "{html}");
        assert!(
            html.contains("<form method=\"post\" action=\"?n=am&amp;e=o%27neil%2B%3Cx%3E%40example.com&amp;t=AAAAAAAAAAAAAAAAAAAAAA\">"),
            "{html}"
        );
        assert!(html.contains("value=\"unsubscribe\""), "{html}");
    }

    #[test]
    fn undo_is_offered_only_for_what_the_reader_asked_for() {
        let undo = "value=\"resubscribe\"";
        let own = page(|c| unsubscribed(c, &suppression(SuppressionReason::Link), false));
        assert!(own.contains(undo), "{own}");
        let bounced = page(|c| unsubscribed(c, &suppression(SuppressionReason::HardBounce), false));
        assert!(!bounced.contains(undo), "{bounced}");
        assert!(bounced.contains("could not be delivered"), "{bounced}");
    }

    #[test]
    fn preferences_tick_the_chosen_sections_or_all() {
        let mut standing = Standing::default();
        let all = page(|c| preferences_page(c, &standing, None));
        assert_eq!(all.matches(" checked>").count(), 4, "{all}");
        assert!(
            all.contains("You get Morning &lt;Brief&gt; &amp; &quot;Co&quot;: every section."),
            "{all}"
        );
        standing.sections = Preferences {
            regions: vec!["world".into()],
            topics: vec![],
        };
        let some = page(|c| preferences_page(c, &standing, Some(Notice::Saved)));
        assert_eq!(some.matches(" checked>").count(), 3, "{some}");
        assert!(some.contains("value=\"world\" checked>"), "{some}");
        assert!(!some.contains("value=\"national\" checked>"), "{some}");
        assert!(some.contains("you get only World &lt;b&gt;."), "{some}");
        assert!(some.contains("value=\"unsubscribe-all\""), "{some}");
    }

    #[test]
    fn the_policy_allows_only_the_inline_stylesheet() {
        let hash = CSP
            .split("'sha256-")
            .nth(1)
            .unwrap()
            .split('\'')
            .next()
            .unwrap();
        let again = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(CSS));
        assert_eq!(hash, again);
        assert!(CSP.contains("frame-ancestors 'none'"));
        assert!(!CSP.contains("script-src"));
    }
}
