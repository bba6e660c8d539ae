//! What templates see, as types: `site`, `newsletter`, `edition`, `sections`
//! and `sections_below` (with their items) and `subscriber`.
//! `docs/templates.md` documents these fields; a test checks that every
//! documented variable is here.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::archive::layout;
use crate::audience::Subscriber;
use crate::config::{Config, LeadPlacement, Newsletter, Site, Term};
use crate::edition::{Edition, Placed, Section};
use crate::render::markdown::absolute_url;
use crate::render::{Bodies, byline};

/// A region or topic as templates see it.
#[derive(Debug, Clone, Serialize)]
pub struct TermCtx<'a> {
    pub id: &'a str,
    pub name: &'a str,
}

impl<'a> From<&'a Term> for TermCtx<'a> {
    fn from(t: &'a Term) -> Self {
        TermCtx {
            id: &t.id,
            name: &t.name,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct NewsletterCtx<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub from: &'a str,
    pub reply_to: Option<&'a str>,
    pub template: &'a str,
    /// `top` or `in_section`.
    pub lead: LeadPlacement,
    /// What the digest calls its word count and reading time.
    pub count_label: &'a str,
    /// The newsletter's page in the web archive (its editions, newest
    /// first); empty when it has none.
    pub archive_url: String,
    /// The pitch on the sign-up page; empty when not configured.
    pub description: &'a str,
    /// How often it comes ("Weekday mornings"); empty when unknown.
    pub cadence: &'a str,
}

impl<'a> From<&'a Newsletter> for NewsletterCtx<'a> {
    fn from(n: &'a Newsletter) -> Self {
        NewsletterCtx {
            id: &n.id,
            name: &n.name,
            from: &n.from,
            reply_to: n.reply_to.as_deref(),
            template: &n.template,
            lead: n.lead,
            count_label: &n.count_label,
            archive_url: String::new(),
            description: n.description.as_deref().unwrap_or_default(),
            cadence: n.cadence.as_deref().unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ImageCtx<'a> {
    /// Absolute.
    pub src: String,
    pub alt: &'a str,
    pub credit: Option<&'a str>,
}

/// One item as placed in the edition being rendered.
#[derive(Debug, Clone, Serialize)]
pub struct ItemCtx<'a> {
    pub id: &'a str,
    /// With typographic quotes, as the body has them.
    pub title: &'a str,
    /// RFC 3339 in the site's zone.
    pub date: String,
    /// Where this edition places it.
    pub region: TermCtx<'a>,
    pub topic: TermCtx<'a>,
    pub regions: Vec<TermCtx<'a>>,
    pub topics: Vec<TermCtx<'a>>,
    pub priority: i64,
    pub summary: &'a str,
    pub authors: &'a [String],
    pub byline: String,
    pub image: Option<ImageCtx<'a>>,
    /// Absolute URL, or empty.
    pub link: String,
    pub tags: &'a [String],
    pub extra: &'a serde_json::Value,
    pub html: &'a str,
    pub text: &'a str,
    pub word_count: usize,
    /// The item's file, relative to the newsroom, with `/` separators.
    pub source: String,
    /// The body has its own `Go deeper:` paragraph: the template names the
    /// `link` differently, so that a reader sees "Go deeper" once.
    pub go_deeper: bool,
    /// The `link` is also one of the body's Go deeper links: the template
    /// leaves the link line out.
    pub link_in_body: bool,
}

impl<'a> ItemCtx<'a> {
    pub fn new(cfg: &'a Config, placed: &Placed<'a>, bodies: &'a Bodies) -> ItemCtx<'a> {
        let i = placed.item;
        let body = bodies.get(&i.id);
        let base = &cfg.site.base_url;
        let link = i
            .link
            .as_deref()
            .and_then(|l| absolute_url(l, base))
            .unwrap_or_default();
        let link_in_body =
            !link.is_empty() && body.is_some_and(|b| b.go_deeper_links.contains(&link));
        ItemCtx {
            id: &i.id,
            title: body.map_or(i.title.as_str(), |b| b.title.as_str()),
            date: i.date.with_timezone(&cfg.site.timezone).to_rfc3339(),
            region: placed.region.into(),
            topic: placed.topic.into(),
            regions: i
                .regions
                .iter()
                .filter_map(|id| cfg.region(id))
                .map(TermCtx::from)
                .collect(),
            topics: i
                .topics
                .iter()
                .filter_map(|id| cfg.topic(id))
                .map(TermCtx::from)
                .collect(),
            priority: i.priority,
            summary: body.map_or(i.summary.as_str(), |b| b.summary.as_str()),
            authors: &i.authors,
            byline: byline(&i.authors),
            image: i.image.as_ref().map(|img| ImageCtx {
                src: absolute_url(&img.src, base).unwrap_or_default(),
                alt: &img.alt,
                credit: img.credit.as_deref(),
            }),
            link,
            tags: &i.tags,
            extra: &i.extra,
            html: body.map(|b| b.html.as_str()).unwrap_or_default(),
            text: body.map(|b| b.text.as_str()).unwrap_or_default(),
            word_count: body.map_or(0, |b| b.word_count),
            source: i.source.to_string_lossy().replace('\\', "/"),
            go_deeper: body.is_some_and(|b| b.go_deeper),
            link_in_body,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SectionCtx<'a> {
    /// `world/trade`, `world`, `trade` or `all`.
    pub id: String,
    /// `World · Trade`, or empty when not grouped.
    pub title: String,
    pub region: Option<TermCtx<'a>>,
    pub topic: Option<TermCtx<'a>>,
    /// The first section of its region: print the region heading once.
    pub first_in_region: bool,
    pub items: Vec<ItemCtx<'a>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EditionCtx<'a> {
    /// `am-2026-11-30T0600`.
    pub id: &'a str,
    /// The slot in the newsletter's zone, RFC 3339.
    pub slot: String,
    /// The first story by priority (what the default subject names).
    pub lead: Option<ItemCtx<'a>>,
    /// The lead again when the digest opens with it above the sections
    /// (`lead: top`); null with `lead: in_section`.
    pub top_story: Option<ItemCtx<'a>>,
    pub item_count: usize,
    pub word_count: usize,
    pub reading_minutes: usize,
    /// Empty while the subject and preheader templates themselves render.
    pub subject: String,
    pub preheader: String,
    /// The edition's page in the web archive ("View in browser"); empty
    /// when there is none.
    pub web_url: String,
}

/// The whole context of one rendering.
#[derive(Debug, Clone, Serialize)]
pub struct TemplateContext<'a> {
    pub site: &'a Site,
    pub newsletter: NewsletterCtx<'a>,
    pub edition: EditionCtx<'a>,
    /// Every item, the lead included, in section order: a template that
    /// does not know `edition.top_story` still shows every story.
    pub sections: Vec<SectionCtx<'a>>,
    /// The sections as they follow the top story: without it, and without
    /// a section it leaves empty (the same as `sections` with
    /// `lead: in_section`).
    pub sections_below: Vec<SectionCtx<'a>>,
    pub subscriber: &'a SubscriberCtx,
}

impl<'a> TemplateContext<'a> {
    pub fn new(
        cfg: &'a Config,
        edition: &'a Edition<'a>,
        bodies: &'a Bodies,
        subscriber: &'a SubscriberCtx,
        words: (usize, usize),
    ) -> TemplateContext<'a> {
        let n = edition.newsletter;
        let sections = section_ctxs(cfg, &edition.sections, bodies);
        let sections_below = match edition.top_story() {
            Some(_) => section_ctxs(cfg, &edition.sections_below(), bodies),
            None => sections.clone(),
        };
        TemplateContext {
            site: &cfg.site,
            newsletter: NewsletterCtx {
                archive_url: layout::newsletter_url(cfg, n),
                ..n.into()
            },
            edition: EditionCtx {
                id: &edition.id,
                slot: edition.slot.at.with_timezone(&n.timezone).to_rfc3339(),
                lead: edition.lead().map(|p| ItemCtx::new(cfg, p, bodies)),
                top_story: edition.top_story().map(|p| ItemCtx::new(cfg, p, bodies)),
                item_count: edition.item_count(),
                word_count: words.0,
                reading_minutes: words.1,
                subject: String::new(),
                preheader: String::new(),
                web_url: layout::web_url(cfg, n, edition.slot.at),
            },
            sections,
            sections_below,
            subscriber,
        }
    }
}

fn section_ctxs<'a>(
    cfg: &'a Config,
    sections: &[Section<'a>],
    bodies: &'a Bodies,
) -> Vec<SectionCtx<'a>> {
    let mut last_region = None;
    sections
        .iter()
        .map(|s| {
            let first_in_region = s.region.is_some() && s.region.map(|r| &r.id) != last_region;
            last_region = s.region.map(|r| &r.id);
            SectionCtx {
                id: s.id(),
                title: s.title(),
                region: s.region.map(TermCtx::from),
                topic: s.topic.map(TermCtx::from),
                first_in_region,
                items: s
                    .items
                    .iter()
                    .map(|p| ItemCtx::new(cfg, p, bodies))
                    .collect(),
            }
        })
        .collect()
}

/// The `subscriber` templates see: the recipient, a real list row in the
/// preview, a sample during `check` and `build`. When an edition is sent,
/// each field holds a placeholder instead (see `mail::variant`), filled in
/// per message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SubscriberCtx {
    pub email: String,
    pub name: String,
    pub unsubscribe_url: String,
    /// Where the reader changes what they get; empty when there is no such
    /// page.
    pub preferences_url: String,
    /// A `send --to` copy: the footer says so instead of claiming that the
    /// address is subscribed.
    pub test_copy: bool,
    /// The web edition, for the archive: nobody's copy, every other field
    /// empty; the footer says what it is instead of whom it was sent to.
    pub web: bool,
    /// The subscriber's preferences, as region and topic ids (empty: all).
    pub regions: Vec<String>,
    pub topics: Vec<String>,
    /// The list's other columns, by header.
    #[serde(flatten)]
    pub fields: BTreeMap<String, String>,
}

/// The address `check` and `build` render for.
pub const SAMPLE_EMAIL: &str = "reader@example.com";

impl SubscriberCtx {
    /// The one way to make a subscriber's context: from a list row and the
    /// row's unsubscribe and preferences links.
    pub fn of(s: &Subscriber, unsubscribe_url: String, preferences_url: String) -> SubscriberCtx {
        let mut fields: BTreeMap<String, String> = s.fields.iter().cloned().collect();
        // Columns cannot shadow the named fields (the list parser keeps
        // them apart already; this keeps the context unambiguous).
        for k in [
            "email",
            "name",
            "unsubscribe_url",
            "preferences_url",
            "test_copy",
            "web",
            "regions",
            "topics",
        ] {
            fields.remove(k);
        }
        SubscriberCtx {
            email: s.email.clone(),
            name: s.name.clone().unwrap_or_default(),
            unsubscribe_url,
            preferences_url,
            test_copy: false,
            web: false,
            regions: s.regions.clone(),
            topics: s.topics.clone(),
            fields,
        }
    }

    /// The sample subscriber of `check`, `build` and the preview.
    pub fn sample(cfg: &Config) -> SubscriberCtx {
        let s = Subscriber {
            email: SAMPLE_EMAIL.into(),
            name: Some("Sample Reader".into()),
            ..Subscriber::default()
        };
        let link = |url: &str| format!("{url}?sample=1");
        let d = &cfg.delivery;
        SubscriberCtx::of(&s, link(&d.unsubscribe.url), link(&d.preferences.url))
    }

    /// The sample subscriber for newsletter `n`: with the list's extra
    /// columns present and empty, so templates that print them render.
    pub fn sample_for(cfg: &Config, n: &Newsletter) -> SubscriberCtx {
        let mut s = SubscriberCtx::sample(cfg);
        if let Some(list) = &n.subscribers {
            for c in crate::audience::list_columns(list) {
                s.fields.entry(c).or_default();
            }
        }
        s
    }

    /// The reader of the web edition of newsletter `n`: nobody. The list's
    /// columns are there, empty, so that templates that print them render.
    pub fn web_for(n: &Newsletter) -> SubscriberCtx {
        let mut nobody = Subscriber::default();
        if let Some(list) = &n.subscribers {
            nobody.fields = (crate::audience::list_columns(list).into_iter())
                .map(|c| (c, String::new()))
                .collect();
        }
        let mut s = SubscriberCtx::of(&nobody, String::new(), String::new());
        s.web = true;
        s
    }

    /// Every string field by name (`email`, `name`, `unsubscribe_url`,
    /// `preferences_url` and the columns): what a message is filled with.
    pub fn values(&self) -> BTreeMap<String, String> {
        let mut m = self.fields.clone();
        m.insert("email".into(), self.email.clone());
        m.insert("name".into(), self.name.clone());
        m.insert("unsubscribe_url".into(), self.unsubscribe_url.clone());
        if !self.preferences_url.is_empty() {
            m.insert("preferences_url".into(), self.preferences_url.clone());
        }
        m
    }

    /// This subscriber as a rendering for many: each field that is not empty
    /// becomes `placeholder(field)`, each empty one stays empty, so that
    /// `{% if subscriber.name %}` still decides per variant.
    pub fn placeholders(&self, placeholder: impl Fn(&str) -> String) -> SubscriberCtx {
        let values = self.values();
        self.placeholders_with(|k| match values.get(k).is_some_and(|v| !v.is_empty()) {
            true => placeholder(k),
            false => String::new(),
        })
    }

    /// This subscriber with each field replaced by what `mark` says for its
    /// name (a placeholder, or empty).
    pub fn placeholders_with(&self, mark: impl Fn(&str) -> String) -> SubscriberCtx {
        SubscriberCtx {
            email: mark("email"),
            name: mark("name"),
            unsubscribe_url: mark("unsubscribe_url"),
            preferences_url: mark("preferences_url"),
            test_copy: self.test_copy,
            web: self.web,
            regions: self.regions.clone(),
            topics: self.topics.clone(),
            fields: self.fields.keys().map(|k| (k.clone(), mark(k))).collect(),
        }
    }
}
