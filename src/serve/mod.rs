//! `briefing serve`: the public endpoint, behind the newsroom's TLS proxy,
//! that answers the links every message carries: RFC 8058 one-click
//! unsubscribes, the unsubscribe page a person sees, and the preferences
//! page. This file owns what a reader can do and what is recorded for it;
//! `link` reads and verifies a link, `form` reads a POST's body, `pages`
//! writes the HTML, `server` has the routes, limits and connections, and
//! `store` hands the ledger's work to one thread; `archive` serves the web
//! archive's files with `--archive`.

pub mod archive;
pub mod form;
pub mod link;
pub mod pages;
pub mod server;
mod store;
pub mod subscribe;

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use chrono::Utc;
use serde_json::json;

use crate::config::{Newsroom, Term};
use crate::delivery::compose::secrets;
use crate::ledger::{
    Preferences, ReturnEvent, ReturnKind, Suppression, SuppressionReason, SuppressionScope,
};
use form::Fields;
use link::{Reader, Refusal};
use store::Store;
pub use store::Unavailable;

/// The proxy's health check.
pub const HEALTH_PATH: &str = "/healthz";

/// Bytes of a user agent kept as evidence: enough to tell Gmail's from a
/// browser's, and bounded whatever a client sends.
const USER_AGENT_BYTES: usize = 256;

/// A newsletter as its readers' pages show it.
#[derive(Debug, Clone)]
pub struct Letter {
    pub id: String,
    pub name: String,
    /// The regions and topics it carries, which a reader may choose from.
    pub regions: Vec<Term>,
    pub topics: Vec<Term>,
    subscribers: Option<PathBuf>,
}

impl Letter {
    /// Whether the page offers a choice of regions (of topics): only when
    /// there are two or more to choose from.
    pub fn offers_regions(&self) -> bool {
        self.regions.len() > 1
    }

    pub fn offers_topics(&self) -> bool {
        self.topics.len() > 1
    }
}

/// One of the pages: its public URL (as in messages) and the path it is
/// routed at.
#[derive(Debug, Clone)]
pub struct Route {
    pub url: String,
    pub path: String,
}

/// How an unsubscribe arrived, kept as its reason and evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The mailbox provider's RFC 8058 POST.
    OneClick,
    /// The button on the unsubscribe page.
    UnsubscribePage,
    PreferencesPage,
}

impl Via {
    fn reason(self) -> SuppressionReason {
        match self {
            Via::OneClick => SuppressionReason::OneClick,
            Via::UnsubscribePage | Via::PreferencesPage => SuppressionReason::Link,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Via::OneClick => "one-click",
            Via::UnsubscribePage => "unsubscribe page",
            Via::PreferencesPage => "preferences page",
        }
    }
}

/// Where a reader stands with a newsletter.
#[derive(Debug, Clone, Default)]
pub struct Standing {
    /// Their suppression for this newsletter, if any.
    pub newsletter: Option<Suppression>,
    /// Their suppression for every newsletter, if any.
    pub all: Option<Suppression>,
    /// The sections they get: chosen on the preferences page, else their
    /// list row's columns, else everything (empty lists).
    pub sections: Preferences,
}

impl Standing {
    pub fn receives(&self) -> bool {
        self.newsletter.is_none() && self.all.is_none()
    }
}

/// What asking to be re-subscribed did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lift {
    Lifted,
    NotSuppressed,
    /// Suppressed for a reason the reader cannot lift from a page (a bounce,
    /// a complaint, the newsroom's own decision).
    Kept(SuppressionReason),
}

/// Everything the endpoint serves from: the newsroom's names, the routes,
/// the secrets that sign links, and the ledger.
pub struct Endpoint {
    pub site: String,
    pub language: String,
    pub letters: Vec<Letter>,
    pub unsubscribe: Route,
    pub preferences: Route,
    /// The web archive, when serve was asked to serve it too.
    pub archive: Option<archive::Mount>,
    /// The sign-up page and its confirmation links.
    pub signup: subscribe::Desk,
    secrets: Vec<Vec<u8>>,
    store: Store,
}

impl Endpoint {
    /// Reads what it needs from the newsroom and opens the ledger.
    pub fn open(newsroom: &Newsroom) -> Result<Endpoint> {
        let cfg = &newsroom.config;
        let d = &cfg.delivery;
        let unsubscribe = route("delivery.unsubscribe.url", &d.unsubscribe.url)?;
        let preferences = route("delivery.preferences.url", &d.preferences.url)?;
        if unsubscribe.path == preferences.path {
            bail!(
                "the unsubscribe and preferences pages have the same path `{}`: give delivery.preferences.url a path of its own",
                unsubscribe.path
            );
        }
        let secrets = secrets(newsroom)
            .context("briefing serve verifies reader links with the unsubscribe secret")?;
        let signup = subscribe::Desk::open(newsroom, secrets[0].clone())?;
        for (what, path) in [
            ("signup.url", &signup.page.path),
            ("the sign-up's confirmation link", &signup.confirm.path),
        ] {
            if [&unsubscribe.path, &preferences.path].contains(&path) {
                bail!(
                    "{what} has the path `{path}` of another page: give signup.url a path of its own, like /subscribe"
                );
            }
        }
        let terms = |filter: &Option<Vec<String>>, all: &[Term]| match filter {
            None => all.to_vec(),
            Some(ids) => all
                .iter()
                .filter(|t| ids.contains(&t.id))
                .cloned()
                .collect(),
        };
        let letters = (cfg.newsletters.iter())
            .map(|n| Letter {
                id: n.id.clone(),
                name: n.name.clone(),
                regions: terms(&n.regions, &cfg.regions),
                topics: terms(&n.topics, &cfg.topics),
                subscribers: n.subscribers.clone(),
            })
            .collect();
        Ok(Endpoint {
            site: cfg.site.name.clone(),
            language: cfg.site.language.clone(),
            letters,
            unsubscribe,
            preferences,
            archive: None,
            signup,
            secrets,
            store: Store::open(&cfg.ledger)?,
        })
    }

    /// Called with the address `serve` listens on: off this machine, with
    /// the development secret among the secrets (the outbox's fallback,
    /// published in briefing's source), sign-ups are closed, since anyone
    /// could sign a confirmation link for any address.
    pub fn listening_on(&mut self, ip: std::net::IpAddr) {
        let forgeable = (self.secrets.iter()).any(|s| s == crate::mail::token::DEV_SECRET);
        if forgeable && !ip.is_loopback() {
            self.signup.close(
                "the development secret is among the unsubscribe secrets (delivery.unsubscribe.secret_env unset, or naming it) and serve listens beyond this machine: anyone could sign confirmation links with it; set a secret of your own",
            );
        }
    }

    /// The reader a link's query names, if its token verifies.
    pub fn reader(&self, query: Option<&str>) -> Result<Reader, Refusal> {
        link::reader(query.unwrap_or_default(), &self.secrets)
    }

    pub fn letter(&self, id: &str) -> Option<&Letter> {
        self.letters.iter().find(|l| l.id == id)
    }

    /// Suppresses the reader for `scope`, durably, before this returns.
    /// Returns whether it was new (a repeat records nothing) and the entry
    /// now in force: this one, or the one that was there first.
    pub async fn unsubscribe(
        &self,
        r: &Reader,
        scope: SuppressionScope,
        via: Via,
        user_agent: Option<&str>,
    ) -> Result<(bool, Suppression), Unavailable> {
        let now = Utc::now();
        let evidence = json!({
            "via": via.as_str(),
            "at": now.to_rfc3339(),
            "user_agent": user_agent.map(clip),
        });
        let s = Suppression {
            address: r.email.clone(),
            scope,
            reason: via.reason(),
            created_at: now,
            evidence: evidence.clone(),
        };
        // Counted for the newsletter whose link it came through, even when
        // it is from all of them: that newsletter is what made them leave.
        let event = ReturnEvent {
            address: r.email.clone(),
            newsletter: Some(r.newsletter.clone()),
            edition_id: None,
            kind: ReturnKind::Unsubscribe,
            at: now,
            evidence: json!({ "scope": s.scope.as_str(), "request": evidence }),
        };
        let scope = s.scope.clone();
        let (new, entry) = self
            .store
            .call(move |l| {
                if l.suppress_with_event(&s, &event)? {
                    return Ok((true, s));
                }
                let first =
                    (l.suppressions_of(&s.address)?.into_iter()).find(|e| e.scope == s.scope);
                Ok((false, first.unwrap_or(s)))
            })
            .await?;
        tracing::info!(newsletter = %r.newsletter, scope = %scope, via = via.as_str(), new, "unsubscribed");
        tracing::debug!(address = %r.email, scope = %scope, "unsubscribed");
        Ok((new, entry))
    }

    /// Lifts the reader's suppression for `scope` when it is one they asked
    /// for themselves, and records that they came back.
    pub async fn resubscribe(
        &self,
        r: &Reader,
        scope: SuppressionScope,
    ) -> Result<Lift, Unavailable> {
        let (address, newsletter) = (r.email.clone(), r.newsletter.clone());
        let lift_scope = scope.clone();
        let lift = self
            .store
            .call(move |l| {
                let entry =
                    (l.suppressions_of(&address)?.into_iter()).find(|s| s.scope == lift_scope);
                let Some(entry) = entry else {
                    return Ok(Lift::NotSuppressed);
                };
                if !entry.reason.is_the_readers_own() {
                    return Ok(Lift::Kept(entry.reason));
                }
                l.unsuppress(&address, Some(&lift_scope), false)?;
                l.record_event(&ReturnEvent {
                    address,
                    newsletter: Some(newsletter),
                    edition_id: None,
                    kind: ReturnKind::Resubscribe,
                    at: Utc::now(),
                    evidence: json!({
                        "via": "reader page",
                        "scope": lift_scope.as_str(),
                        "lifted": entry.reason.as_str(),
                    }),
                })?;
                Ok(Lift::Lifted)
            })
            .await?;
        tracing::info!(newsletter = %r.newsletter, scope = %scope, outcome = ?lift, "resubscribe");
        Ok(lift)
    }

    /// Stores the reader's choice of sections; the next edition honours it.
    pub async fn save(&self, r: &Reader, p: Preferences) -> Result<(), Unavailable> {
        let (address, newsletter) = (r.email.clone(), r.newsletter.clone());
        self.store
            .call(move |l| l.set_preferences(&address, &newsletter, &p))
            .await?;
        tracing::info!(newsletter = %r.newsletter, "preferences saved");
        Ok(())
    }

    /// Where the reader stands with their newsletter; with the sections
    /// they get when `sections` (which may read the subscriber list).
    pub async fn standing(&self, r: &Reader, sections: bool) -> Result<Standing, Unavailable> {
        let (address, newsletter) = (r.email.clone(), r.newsletter.clone());
        let (suppressions, chosen) = self
            .store
            .call(move |l| {
                Ok((
                    l.suppressions_of(&address)?,
                    l.preferences_of(&address, &newsletter)?,
                ))
            })
            .await?;
        let mut standing = Standing::default();
        for s in suppressions {
            match &s.scope {
                SuppressionScope::All => standing.all = Some(s),
                SuppressionScope::Newsletter(id) if *id == r.newsletter => {
                    standing.newsletter = Some(s)
                }
                SuppressionScope::Newsletter(_) => {}
            }
        }
        standing.sections = match chosen {
            Some(p) => p,
            None if sections => self.listed_sections(r).await,
            None => Preferences::default(),
        };
        Ok(standing)
    }

    /// The sections the reader's row of the newsletter's list asks for:
    /// what the next edition gives them until they choose on the page.
    async fn listed_sections(&self, r: &Reader) -> Preferences {
        let Some(path) = self
            .letter(&r.newsletter)
            .and_then(|l| l.subscribers.clone())
        else {
            return Preferences::default();
        };
        let email = r.email.clone();
        let row = tokio::task::spawn_blocking(move || {
            let list = crate::audience::load_subscribers(&path).ok()?;
            (list.subscribers.into_iter()).find(|s| s.email.eq_ignore_ascii_case(&email))
        })
        .await
        .ok()
        .flatten();
        row.map(|s| Preferences {
            regions: s.regions,
            topics: s.topics,
        })
        .unwrap_or_default()
    }

    /// Whether the ledger answers.
    pub async fn healthy(&self) -> bool {
        self.store.call(|l| l.ping()).await.is_ok()
    }
}

/// What a submitted preferences form chose, in the newsletter's own terms.
/// Every box of a list ticked is stored as "everything" (an empty list), so
/// a region or topic the newsroom adds later reaches the reader too.
pub fn choose(letter: &Letter, fields: &Fields) -> Result<Preferences, &'static str> {
    let pick = |offered: &[Term], shown: bool, name: &str, none: &'static str| {
        let mut chosen: Vec<String> = Vec::new();
        for v in fields.all(name) {
            if !offered.iter().any(|t| t.id == v) {
                return Err("the form names a section this newsletter does not have");
            }
            if !chosen.iter().any(|c| c == v) {
                chosen.push(v.to_owned());
            }
        }
        if !shown || chosen.len() == offered.len() {
            return Ok(Vec::new());
        }
        if chosen.is_empty() {
            return Err(none);
        }
        // In the newsroom's order, whatever order the browser sent.
        Ok((offered.iter())
            .filter(|t| chosen.contains(&t.id))
            .map(|t| t.id.clone())
            .collect())
    };
    Ok(Preferences {
        regions: pick(
            &letter.regions,
            letter.offers_regions(),
            "region",
            "Choose at least one region, or unsubscribe below.",
        )?,
        topics: pick(
            &letter.topics,
            letter.offers_topics(),
            "topic",
            "Choose at least one topic, or unsubscribe below.",
        )?,
    })
}

/// The path `url` is routed at: what follows the host, `/` when nothing
/// does. Only plain paths are routable (no percent-escapes or patterns).
fn route(key: &str, url: &str) -> Result<Route> {
    let rest = url.strip_prefix("https://").unwrap_or(url);
    let path = rest.find('/').map_or("/", |i| &rest[i..]);
    let plain = path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'.' | b'_' | b'~'));
    if !plain || path.contains("//") {
        bail!(
            "{key} `{url}`: briefing serve cannot route the path `{path}`; use a plain path like /unsubscribe"
        );
    }
    if path == HEALTH_PATH {
        bail!("{key} `{url}`: {HEALTH_PATH} is the health check's path");
    }
    Ok(Route {
        url: url.to_owned(),
        path: path.to_owned(),
    })
}

/// At most [`USER_AGENT_BYTES`] of a header value, on a character boundary,
/// without control characters.
fn clip(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > USER_AGENT_BYTES {
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn term(id: &str) -> Term {
        Term {
            id: id.into(),
            name: id.to_uppercase(),
        }
    }

    fn letter() -> Letter {
        Letter {
            id: "am".into(),
            name: "Morning".into(),
            regions: vec![term("national"), term("world")],
            topics: vec![term("politics"), term("economy"), term("tech")],
            subscribers: None,
        }
    }

    fn fields(body: &str) -> Fields {
        Fields::from_urlencoded(body.as_bytes()).unwrap()
    }

    #[test]
    fn a_choice_is_stored_in_the_newsrooms_order_and_all_means_everything() {
        let p = choose(
            &letter(),
            &fields("topic=tech&region=world&topic=politics&topic=tech"),
        )
        .unwrap();
        assert_eq!(p.regions, ["world"]);
        assert_eq!(p.topics, ["politics", "tech"]);
        let all = choose(
            &letter(),
            &fields("region=national&region=world&topic=politics&topic=economy&topic=tech"),
        )
        .unwrap();
        assert_eq!(all, Preferences::default());
    }

    #[test]
    fn an_empty_or_foreign_choice_is_refused() {
        assert!(
            choose(&letter(), &fields("topic=tech"))
                .unwrap_err()
                .contains("region")
        );
        assert!(
            choose(&letter(), &fields("region=world"))
                .unwrap_err()
                .contains("topic")
        );
        assert!(choose(&letter(), &fields("region=world&topic=tech&topic=sports")).is_err());
        // A list with one entry is no choice: not shown, not required.
        let one = Letter {
            regions: vec![term("denver")],
            ..letter()
        };
        assert_eq!(
            choose(&one, &fields("topic=tech")).unwrap(),
            Preferences {
                regions: vec![],
                topics: vec!["tech".into()]
            }
        );
    }

    #[test]
    fn routes_are_the_urls_paths() {
        let r = route("k", "https://news.example.com/unsubscribe").unwrap();
        assert_eq!(r.path, "/unsubscribe");
        assert_eq!(route("k", "https://x.example").unwrap().path, "/");
        assert_eq!(
            route("k", "https://x.example/a/b-c_d.e").unwrap().path,
            "/a/b-c_d.e"
        );
        for bad in [
            "https://x.example/{id}",
            "https://x.example/a%20b",
            "https://x.example/a//b",
            "https://x.example/healthz",
        ] {
            assert!(route("k", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn user_agents_are_clipped_and_cleaned() {
        assert_eq!(clip("Mozilla\r\n/5.0"), "Mozilla/5.0");
        let long = "é".repeat(500);
        let c = clip(&long);
        assert!(c.len() <= USER_AGENT_BYTES && c.len() >= USER_AGENT_BYTES - 1);
    }

    proptest! {
        #[test]
        fn any_form_chooses_only_offered_sections(body in "[a-z=&%0-9]{0,120}") {
            let l = letter();
            if let Ok(p) = choose(&l, &fields(&body)) {
                prop_assert!(p.regions.iter().all(|r| l.regions.iter().any(|t| &t.id == r)));
                prop_assert!(p.topics.iter().all(|r| l.topics.iter().any(|t| &t.id == r)));
            }
        }
    }
}
