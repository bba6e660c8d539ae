//! The preview's own pages, built as strings. Everything that comes from the
//! newsroom (titles, subjects, diagnostics, paths) goes through `esc`; the
//! rendered digest itself is only ever served on its own URL, inside a
//! sandboxed iframe.

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

use super::{Audience, EditionView, Project};
use crate::config::Newsletter;
use crate::diag::{Diagnostic, Diagnostics, Severity};
use crate::edition::{self, Edition};
use crate::ledger::{EditionState, EditionSummary, Ledger, Location};
use crate::messages::{kb, plural};
use crate::render::{GMAIL_CLIP_BYTES, HTML_WARN_BYTES, Rendered};

/// Desktop width of the HTML preview, about a mail client's reading pane.
pub const DESKTOP_WIDTH: u32 = 800;
/// Phone width: an iPhone's CSS viewport.
pub const PHONE_WIDTH: u32 = 375;

/// What a page's URL may ask for. Unknown parameters are ignored.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct PageQuery {
    /// The time to show editions for, as `--at` takes it.
    pub at: Option<String>,
    pub subscriber: Option<String>,
    pub region: Option<String>,
    pub topic: Option<String>,
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl PageQuery {
    pub fn audience(&self) -> Audience {
        Audience {
            subscriber: non_empty(&self.subscriber).unwrap_or_default().to_string(),
            region: non_empty(&self.region).map(String::from),
            topic: non_empty(&self.topic).map(String::from),
        }
    }

    /// `?at=…&region=…` for links that keep the page's choices ("" when none).
    pub fn query_string(&self, version: Option<u64>) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("at", &self.at),
            ("subscriber", &self.subscriber),
            ("region", &self.region),
            ("topic", &self.topic),
        ] {
            if let Some(v) = non_empty(v) {
                parts.push(format!("{k}={}", url_encode(v)));
            }
        }
        if let Some(v) = version {
            parts.push(format!("v={v}"));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    }

    /// Only the time: for links to other newsletters.
    fn at_only(&self) -> PageQuery {
        PageQuery {
            at: self.at.clone(),
            ..PageQuery::default()
        }
    }
}

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    crate::render::escape_html(s)
}

/// Percent-encodes a query value (everything but RFC 3986's unreserved set).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The time a page shows, and why its `at` was not used if it was not.
fn resolve_at(p: &Project, q: &PageQuery) -> (DateTime<Utc>, Option<Diagnostic>) {
    match non_empty(&q.at) {
        None => (p.default_at(), None),
        Some(s) => match p.parse_at(s) {
            Ok(t) => (t, None),
            Err(e) => (
                p.default_at(),
                Some(Diagnostic::error(
                    "?at",
                    format!("{e}; showing the default time"),
                )),
            ),
        },
    }
}

fn site_tz(p: &Project) -> Tz {
    p.newsroom()
        .map_or(chrono_tz::UTC, |n| n.config.site.timezone)
}

/// `Mon 30 Nov 2026, 06:00 EST`.
fn when(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .format("%a %-d %b %Y, %H:%M %Z")
        .to_string()
}

/// `2026-11-30T08:00`: a datetime-local value and an `at` for links.
fn at_value(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%dT%H:%M").to_string()
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

const FAVICON: &str = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 32 32'%3E%3Crect width='32' height='32' rx='7' fill='%23111'/%3E%3Cpath d='M8 10h16M8 16h16M8 22h10' stroke='%23fff' stroke-width='3' stroke-linecap='round'/%3E%3C/svg%3E";

/// The frame every page shares: top bar with the time control and the live
/// status, then the problems panel, then `main`.
#[allow(clippy::too_many_arguments)]
fn layout(
    p: &Project,
    title: &str,
    crumbs: &str,
    q: &PageQuery,
    at: DateTime<Utc>,
    extra_diags: &[Diagnostic],
    hidden: &str,
    main: &str,
) -> String {
    let tz = site_tz(p);
    let site = p
        .newsroom()
        .map(|n| n.config.site.name.clone())
        .unwrap_or_else(|| "Newsroom".into());
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="briefing-version" content="{version}">
<title>{title}</title>
<link rel="icon" href="{FAVICON}">
<link rel="stylesheet" href="/assets/preview.css?{asset}">
<script src="/assets/preview.js?{asset}" defer></script>
</head>
<body data-view="both">
<header class="topbar">
  <a class="brand" href="/{home_q}"><span class="logo" aria-hidden="true"></span>briefing <span class="brand-sub">preview</span></a>
  <nav class="crumbs" aria-label="Breadcrumb"><a href="/{home_q}">{site}</a>{crumbs}</nav>
  <form class="at-form" method="get" data-autosubmit>
    <label for="at">Preview time <span class="tz">{tzname}</span></label>
    <input id="at" type="datetime-local" name="at" value="{at_value}" step="60">
    {hidden}<button type="submit" class="btn">Show</button>
    <a class="btn btn-quiet" href="?" title="Back to --at, or now">Reset</a>
  </form>
  <span class="live" id="live" data-state="connecting" role="status" aria-live="polite"><span class="dot"></span><span class="live-text">Connecting…</span></span>
</header>
<div class="problems" data-live="problems">{problems}</div>
{main}
</body>
</html>
"#,
        version = p.version,
        title = esc(title),
        asset = env!("CARGO_PKG_VERSION"),
        home_q = esc(&q.at_only().query_string(None)),
        site = esc(&site),
        tzname = esc(tz.name()),
        at_value = esc(&at_value(at, tz)),
        problems = problems_panel(p, extra_diags),
    );
    h
}

/// The error panel: every diagnostic as `briefing check` prints it.
fn problems_panel(p: &Project, extra: &[Diagnostic]) -> String {
    let mut ds: Diagnostics = p.diagnostics();
    for d in extra {
        if !ds.0.contains(d) {
            ds.push(d.clone());
        }
    }
    let mut notes = Vec::new();
    if p.config_stale() {
        notes.push("config.yaml has errors: showing what the last valid version gave.");
    }
    if p.templates_stale() {
        notes.push("The templates have errors: editions use the last templates that compiled.");
    }
    if ds.is_empty() && notes.is_empty() {
        return String::new();
    }
    let (errors, warnings) = (ds.errors(), ds.warnings());
    let kind = if errors > 0 {
        "has-errors"
    } else {
        "has-warnings"
    };
    let mut h = format!(r#"<section class="panel {kind}" id="problems" aria-label="Problems">"#);
    let _ = write!(
        h,
        r#"<h2>{}{}{}</h2>"#,
        if errors > 0 {
            plural(errors, "error")
        } else {
            String::new()
        },
        if errors > 0 && warnings > 0 { ", " } else { "" },
        if warnings > 0 {
            plural(warnings, "warning")
        } else {
            String::new()
        },
    );
    for n in notes {
        let _ = write!(h, r#"<p class="note">{}</p>"#, esc(n));
    }
    h.push_str(r#"<p class="hint">Fix the file and save: this page updates by itself.</p>"#);
    for d in ds.iter() {
        let sev = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = write!(
            h,
            r#"<pre class="diag diag-{sev}" data-path="{path}">{text}</pre>"#,
            path = esc(&d.locator()),
            text = esc(&d.to_string()),
        );
    }
    h.push_str("</section>");
    h
}

/// Hidden fields that keep a page's other choices when its time changes.
fn hidden_fields(q: &PageQuery) -> String {
    let mut h = String::new();
    for (k, v) in [
        ("subscriber", &q.subscriber),
        ("region", &q.region),
        ("topic", &q.topic),
    ] {
        if let Some(v) = non_empty(v) {
            let _ = write!(h, r#"<input type="hidden" name="{k}" value="{}">"#, esc(v));
        }
    }
    h
}

/// `/`: every newsletter as a row of an inbox.
pub fn index(p: &Project, q: &PageQuery) -> String {
    let (at, at_diag) = resolve_at(p, q);
    let tz = site_tz(p);
    let mut m = String::from(r#"<main class="index" data-live="main">"#);
    match p.newsroom() {
        None => {
            m.push_str(r#"<div class="empty"><h1>Nothing to preview yet</h1><p>config.yaml does not load: fix the errors above and save.</p></div>"#);
        }
        Some(nr) => {
            let cfg = &nr.config;
            let _ = write!(
                m,
                r#"<div class="page-head"><h1>{site}</h1><p class="sub">{n} · {items} · editions at <strong>{at}</strong></p></div>"#,
                site = esc(&cfg.site.name),
                n = plural(cfg.newsletters.len(), "newsletter"),
                items = plural(p.items().len(), "item"),
                at = esc(&when(at, tz)),
            );
            m.push_str(r#"<ul class="inbox" aria-label="Newsletters">"#);
            let link_q = q.at_only().query_string(None);
            let ledger = ledger_editions(&cfg.ledger);
            for n in &cfg.newsletters {
                let view = p.edition(n, at, &Audience::default());
                let sent = view
                    .as_ref()
                    .map(|v| ledger_badge(&ledger, &v.full.id))
                    .unwrap_or_default();
                let href = format!("/newsletter/{}{}", url_encode(&n.id), link_q);
                let next = n
                    .schedule
                    .as_ref()
                    .and_then(|s| s.next_slot(n.timezone, at))
                    .map(|t| when(t, n.timezone));
                let (subject, preheader, count, slot, state) = match &view {
                    None => (
                        "No edition: its schedule has not fired before this time".to_string(),
                        String::new(),
                        0,
                        "no slot".to_string(),
                        "none",
                    ),
                    Some(v) => {
                        let count = v.full.item_count();
                        let slot = when(v.slot.at, n.timezone);
                        match v.rendered.as_deref() {
                            Some(Ok(r)) => (
                                r.subject.clone(),
                                r.preheader.clone(),
                                count,
                                slot,
                                if v.full.is_sendable() { "ok" } else { "short" },
                            ),
                            Some(Err(d)) => (
                                format!("Does not render: {}", d.message),
                                d.locator(),
                                count,
                                slot,
                                "error",
                            ),
                            None if count == 0 => (
                                "No items in this edition's window".to_string(),
                                String::new(),
                                0,
                                slot,
                                "none",
                            ),
                            None => (
                                "Not rendered: the templates have errors".to_string(),
                                String::new(),
                                count,
                                slot,
                                "error",
                            ),
                        }
                    }
                };
                let badge = match state {
                    "short" => format!(
                        r#"<span class="badge badge-warn" title="min_items is {min}: this edition would not be sent">below min_items ({min})</span>"#,
                        min = n.min_items
                    ),
                    "error" => r#"<span class="badge badge-error">error</span>"#.to_string(),
                    _ => String::new(),
                };
                let _ = write!(
                    m,
                    r#"<li class="row state-{state}" data-newsletter="{id}">
  <a class="row-link" href="{href}">
    <span class="avatar" aria-hidden="true">{initial}</span>
    <span class="from"><span class="name">{name}</span><span class="nid">{id}</span></span>
    <span class="line"><span class="subject">{subject}</span>{dash}<span class="preheader">{preheader}</span></span>
    <span class="count" data-items="{count}">{count_text}</span>
    <span class="when">{slot}</span>
  </a>
  <div class="row-meta">{sent}{badge}<span>Next slot: <strong>{next}</strong></span><span>Schedule <code>{schedule}</code> {tzn}{cadence}</span><span>From {from}</span>{pitch}</div>
</li>"#,
                    id = esc(&n.id),
                    href = esc(&href),
                    initial = esc(&initial(&n.name)),
                    name = esc(&n.name),
                    subject = esc(&subject),
                    dash = if preheader.is_empty() { "" } else { " — " },
                    preheader = esc(&preheader),
                    count_text = esc(&plural(count, "item")),
                    slot = esc(&slot),
                    next = esc(&next.unwrap_or_else(|| "none (no schedule)".into())),
                    schedule = esc(&n
                        .schedule
                        .as_ref()
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "none".into())),
                    tzn = esc(n.timezone.name()),
                    from = esc(&n.from),
                    cadence = match &n.cadence {
                        Some(c) => format!(" · {}", esc(c)),
                        None => String::new(),
                    },
                    // What the sign-up page says of it.
                    pitch = match (&n.description, n.signup) {
                        (_, false) =>
                            r#"<span class="pitch">Not on the sign-up page</span>"#.to_string(),
                        (Some(d), true) => format!(
                            r#"<span class="pitch" title="its pitch on the sign-up page">{}</span>"#,
                            esc(d)
                        ),
                        (None, true) => String::new(),
                    },
                );
            }
            m.push_str("</ul>");
        }
    }
    m.push_str("</main>");
    let extra: Vec<Diagnostic> = at_diag.into_iter().collect();
    layout(
        p,
        "Newsletters · briefing preview",
        "",
        q,
        at,
        &extra,
        &hidden_fields(q),
        &m,
    )
}

/// The send ledger's editions by id, read only when the ledger exists: the
/// preview never creates one. `Err` says why an existing one is unreadable.
fn ledger_editions(at: &Location) -> Result<HashMap<String, EditionSummary>, String> {
    let Some(ledger) = Ledger::open_existing(at).map_err(|e| e.to_string())? else {
        return Ok(HashMap::new());
    };
    let editions = ledger.editions(None).map_err(|e| e.to_string())?;
    Ok(editions.into_iter().map(|e| (e.id.clone(), e)).collect())
}

/// What the ledger says about edition `id`, so that an editor can tell a
/// sent edition from a missed one at a glance.
fn ledger_badge(ledger: &Result<HashMap<String, EditionSummary>, String>, id: &str) -> String {
    let editions = match ledger {
        Ok(e) => e,
        Err(why) => {
            return format!(
                r#"<span class="badge badge-error" data-ledger="unreadable" title="{}">ledger unreadable</span>"#,
                esc(why)
            );
        }
    };
    let Some(e) = editions.get(id) else {
        return r#"<span class="badge badge-quiet" data-ledger="not-started" title="The send ledger has no record of this edition">not started</span>"#.into();
    };
    let c = &e.counts;
    let (kind, class, label, title) = match e.state {
        EditionState::Complete => (
            "sent",
            "badge-ok",
            match c.failed {
                0 => format!("sent to {}", thousands(c.sent as usize)),
                f => format!("sent to {}, {f} failed", thousands(c.sent as usize)),
            },
            e.completed_at
                .map(|t| format!("Complete since {}", t.format("%Y-%m-%d %H:%M UTC")))
                .unwrap_or_default(),
        ),
        EditionState::Frozen | EditionState::Sending => (
            "pending",
            "badge-warn",
            format!(
                "sending: {} sent, {} to go",
                thousands(c.sent as usize),
                thousands(c.unsent() as usize)
            ),
            format!(
                "Frozen in the ledger: {} pending, {} deferred, {} failed; the next send run continues it",
                c.pending, c.deferred, c.failed
            ),
        ),
        EditionState::Missed => (
            "missed",
            "badge-error",
            "missed".to_string(),
            e.reason.clone().unwrap_or_default(),
        ),
        EditionState::Skipped => (
            "skipped",
            "badge-quiet",
            "skipped".to_string(),
            e.reason.clone().unwrap_or_default(),
        ),
    };
    format!(
        r#"<span class="badge {class}" data-ledger="{kind}" title="{}">{}</span>"#,
        esc(&title),
        esc(&label)
    )
}

fn initial(name: &str) -> String {
    name.chars()
        .find(|c| c.is_alphanumeric())
        .map(|c| c.to_uppercase().to_string())
        .unwrap_or_else(|| "?".into())
}

/// `/newsletter/<id>`: one edition as subscribers will see it. None when
/// there is no such newsletter.
pub fn edition_page(p: &Project, id: &str, q: &PageQuery, editor_url: &str) -> Option<String> {
    let nr = p.newsroom()?;
    let cfg = &nr.config;
    let n = cfg.newsletter(id)?;
    let (at, at_diag) = resolve_at(p, q);
    let audience = q.audience();
    if !p.offers(n, &audience) {
        return None;
    }
    let view = p.edition(n, at, &audience);
    let mut extra: Vec<Diagnostic> = at_diag.into_iter().collect();
    if let Some(Err(d)) = view.as_ref().and_then(|v| v.rendered.as_deref()) {
        extra.push(d.clone());
    }
    let rendered: Option<&Rendered> = view
        .as_ref()
        .and_then(|v| v.rendered.as_deref())
        .and_then(|r| r.as_ref().ok());
    let version_q = q.query_string(Some(p.version));
    let base = format!("/newsletter/{}", url_encode(&n.id));

    let mut m = String::from(r#"<main class="edition">"#);
    // Summary: the message as an inbox shows it, and its weight.
    m.push_str(r#"<section class="summary" data-live="summary">"#);
    m.push_str(&inbox_card(n, view.as_ref(), rendered));
    m.push_str(&stats_card(n, view.as_ref(), rendered));
    m.push_str("</section>");
    // Slot navigation and notices.
    m.push_str(r#"<div data-live="notices">"#);
    m.push_str(&slot_nav(n, view.as_ref(), q, &base));
    m.push_str(&notices(n, view.as_ref(), p));
    m.push_str("</div>");
    // Toolbar: views and the subscriber picker.
    m.push_str(
        r##"<div class="toolbar"><nav class="tabs" aria-label="View">
<a href="#view=both" data-view-tab="both">Desktop + phone</a>
<a href="#view=desktop" data-view-tab="desktop">Desktop</a>
<a href="#view=phone" data-view-tab="phone">Phone</a>
<a href="#view=text" data-view-tab="text">Plain text</a>
<a href="#view=headers" data-view-tab="headers">Headers</a>
</nav>"##,
    );
    let _ = write!(
        m,
        r#"<div data-live="picker">{}</div></div>"#,
        picker(p, n, q)
    );
    // The views. The iframes stay outside the live regions so that a
    // refresh swaps their documents without rebuilding them.
    let _ = write!(
        m,
        r#"<section class="views">
<figure class="pane pane-desktop"><figcaption>Desktop <span>{dw}px</span></figcaption><div class="frame-wrap desktop" style="max-width:{dw}px"><iframe data-frame="desktop" title="HTML part at desktop width" src="{base}/email.html{vq}" sandbox="allow-same-origin allow-popups allow-popups-to-escape-sandbox" loading="eager"></iframe></div></figure>
<figure class="pane pane-phone"><figcaption>Phone <span>{pw}px</span></figcaption><div class="phone"><div class="frame-wrap" style="width:{pw}px"><iframe data-frame="phone" title="HTML part at phone width" src="{base}/email.html{vq}" sandbox="allow-same-origin allow-popups allow-popups-to-escape-sandbox" loading="eager"></iframe></div></div></figure>
<figure class="pane pane-text"><figcaption>Plain-text part <span><a href="{base}/email.txt{q_plain}" target="_blank" rel="noopener">open raw</a></span></figcaption><div data-live="text">{text}</div></figure>
<figure class="pane pane-headers"><figcaption>Headers</figcaption><div data-live="headers">{headers}</div></figure>
</section>"#,
        dw = DESKTOP_WIDTH,
        pw = PHONE_WIDTH,
        base = esc(&base),
        vq = esc(&version_q),
        q_plain = esc(&q.query_string(None)),
        text = match rendered {
            Some(r) => format!(r#"<pre class="text-part">{}</pre>"#, esc(&r.text)),
            None =>
                r#"<p class="placeholder">No plain-text part: this edition is not rendered.</p>"#
                    .into(),
        },
        headers = headers(p, n, view.as_ref(), rendered),
    );
    let _ = write!(
        m,
        r#"<section class="items-card" data-live="items">{}</section>"#,
        items_list(p, n, view.as_ref(), editor_url)
    );
    m.push_str("</main>");
    let crumbs = format!(
        r#"<span class="sep">/</span><span aria-current="page">{}</span>"#,
        esc(&n.name)
    );
    let title = match rendered {
        Some(r) => format!("{} · {}", r.subject, n.name),
        None => format!("{} · briefing preview", n.name),
    };
    Some(layout(
        p,
        &title,
        &crumbs,
        q,
        at,
        &extra,
        &hidden_fields(q),
        &m,
    ))
}

fn inbox_card(n: &Newsletter, view: Option<&EditionView>, r: Option<&Rendered>) -> String {
    let (from_name, from_addr) = split_address(&n.from);
    let date = view
        .map(|v| {
            v.slot
                .at
                .with_timezone(&n.timezone)
                .format("%a %-d %b, %H:%M")
                .to_string()
        })
        .unwrap_or_default();
    let (subject, preheader, empty) = match r {
        Some(r) => (r.subject.clone(), r.preheader.clone(), ""),
        None => (
            "(no edition)".to_string(),
            match view {
                None => "The schedule has not fired before this time.".to_string(),
                Some(v) if v.shown().item_count() == 0 => {
                    "No items fall in this edition's window.".to_string()
                }
                Some(_) => "The edition does not render: see the errors above.".to_string(),
            },
            " is-empty",
        ),
    };
    format!(
        r#"<article class="inbox-card{empty}" aria-label="As an inbox shows it">
  <div class="avatar" aria-hidden="true">{initial}</div>
  <div class="msg">
    <div class="msg-top"><span class="from-name">{from_name}</span><span class="from-addr">{from_addr}</span><span class="msg-date">{date}</span></div>
    <h1 class="subject" id="subject">{subject}</h1>
    <p class="preheader" id="preheader">{preheader}</p>
  </div>
</article>"#,
        initial = esc(&initial(&from_name)),
        from_name = esc(&from_name),
        from_addr = esc(&from_addr.map(|a| format!("<{a}>")).unwrap_or_default()),
        date = esc(&date),
        subject = esc(&subject),
        preheader = esc(&preheader),
    )
}

/// `"Morning Brief <am@x>"` -> ("Morning Brief", Some("am@x")).
fn split_address(s: &str) -> (String, Option<String>) {
    match (s.find('<'), s.rfind('>')) {
        (Some(a), Some(b)) if a < b => {
            let name = s[..a].trim().trim_matches('"').trim();
            let addr = s[a + 1..b].trim().to_string();
            let name = if name.is_empty() {
                addr.clone()
            } else {
                name.to_string()
            };
            (name, Some(addr))
        }
        _ => (s.trim().to_string(), None),
    }
}

fn stats_card(n: &Newsletter, view: Option<&EditionView>, r: Option<&Rendered>) -> String {
    let Some(r) = r else {
        let count = view.map_or(0, |v| v.shown().item_count());
        return format!(
            r#"<div class="stats"><div class="stat"><span class="label">Items</span><span class="value" id="item-count">{count}</span></div></div>"#
        );
    };
    let size = r.html.len();
    let pct = (size as f64 / GMAIL_CLIP_BYTES as f64 * 100.0).min(100.0);
    let level = if size > GMAIL_CLIP_BYTES {
        "over"
    } else if size > HTML_WARN_BYTES {
        "near"
    } else {
        "ok"
    };
    let verdict = match level {
        "over" => "Gmail will clip it",
        "near" => "close to Gmail's clip",
        _ => "under Gmail's ~102 KB clip",
    };
    let items = view.map_or(0, |v| v.shown().item_count());
    let of = match view {
        Some(v) if v.personal.is_some() => {
            format!(r#"<span class="of">of {}</span>"#, v.full.item_count())
        }
        _ => String::new(),
    };
    let _ = n;
    format!(
        r#"<div class="stats">
  <div class="stat stat-size size-{level}"><span class="label">HTML size</span><span class="value">{size}</span><span class="meter" role="meter" aria-valuemin="0" aria-valuemax="{clip}" aria-valuenow="{bytes}" aria-label="HTML size against Gmail's clipping limit"><span class="fill" style="width:{pct:.1}%"></span></span><span class="note">{verdict} · text part {text}</span></div>
  <div class="stat"><span class="label">Words</span><span class="value">{words}</span></div>
  <div class="stat"><span class="label">Reading</span><span class="value">{minutes} min</span></div>
  <div class="stat"><span class="label">Items</span><span class="value" id="item-count">{items}</span>{of}</div>
</div>"#,
        size = esc(&kb(size)),
        clip = GMAIL_CLIP_BYTES,
        bytes = size,
        text = esc(&kb(r.text.len())),
        words = thousands(r.word_count),
        minutes = r.reading_minutes,
    )
}

fn slot_nav(n: &Newsletter, view: Option<&EditionView>, q: &PageQuery, base: &str) -> String {
    let (Some(v), Some(schedule)) = (view, &n.schedule) else {
        return String::new();
    };
    let link = |t: DateTime<Utc>, label: &str, class: &str| {
        let q = PageQuery {
            at: Some(at_value(t, n.timezone)),
            ..q.clone()
        };
        format!(
            r#"<a class="{class}" href="{base}{q}">{label}</a>"#,
            base = esc(base),
            q = esc(&q.query_string(None)),
            label = esc(label),
        )
    };
    let prev = edition::slot_for(n, v.slot.at - Duration::seconds(1)).map(|s| s.at);
    let next = schedule.next_slot(n.timezone, v.slot.at);
    let fmt = |t: DateTime<Utc>| {
        t.with_timezone(&n.timezone)
            .format("%a %-d %b %H:%M")
            .to_string()
    };
    format!(
        r#"<nav class="slot-nav" aria-label="Editions">{prev}<span class="slot-now">Edition of <strong>{now}</strong> · window from {start}</span>{next}</nav>"#,
        prev = prev
            .map(|t| link(t, &format!("← {}", fmt(t)), "prev"))
            .unwrap_or_default(),
        now = esc(&when(v.slot.at, n.timezone)),
        start = esc(&fmt(v.slot.start)),
        next = next
            .map(|t| link(t, &format!("{} →", fmt(t)), "next"))
            .unwrap_or_default(),
    )
}

fn notices(n: &Newsletter, view: Option<&EditionView>, p: &Project) -> String {
    let mut h = String::new();
    if let Some(v) = view {
        let count = v.full.item_count();
        if count > 0 && !v.full.is_sendable() {
            let _ = write!(
                h,
                r#"<p class="notice notice-warn">This edition has {} but {} needs at least {}: it would not be sent.</p>"#,
                plural(count, "item"),
                esc(&n.name),
                n.min_items
            );
        }
        if let Some(pe) = &v.personal {
            if pe.item_count() == 0 {
                h.push_str(r#"<p class="notice notice-warn">None of this edition's items match this reader's preferences: they would get no edition.</p>"#);
            }
        }
    }
    let _ = p;
    h
}

fn picker(p: &Project, n: &Newsletter, q: &PageQuery) -> String {
    let Some(nr) = p.newsroom() else {
        return String::new();
    };
    let cfg = &nr.config;
    let audience = q.audience();
    let mut h = String::from(r#"<form class="picker" method="get" data-autosubmit>"#);
    if let Some(at) = non_empty(&q.at) {
        let _ = write!(h, r#"<input type="hidden" name="at" value="{}">"#, esc(at));
    }
    h.push_str(r#"<label>Subscriber <select name="subscriber">"#);
    for c in p.choices(n).iter() {
        let selected =
            c.key == audience.subscriber || (audience.subscriber.is_empty() && c.key == "sample");
        let _ = write!(
            h,
            r#"<option value="{}"{}>{}</option>"#,
            esc(&c.key),
            if selected { " selected" } else { "" },
            esc(&c.label)
        );
    }
    h.push_str(r#"</select></label><label>Reads <select name="region"><option value="">every region</option>"#);
    for t in &cfg.regions {
        let sel = audience.region.as_deref() == Some(t.id.as_str());
        let _ = write!(
            h,
            r#"<option value="{}"{}>{}</option>"#,
            esc(&t.id),
            if sel { " selected" } else { "" },
            esc(&t.name)
        );
    }
    h.push_str(
        r#"</select></label><label>and <select name="topic"><option value="">every topic</option>"#,
    );
    for t in &cfg.topics {
        let sel = audience.topic.as_deref() == Some(t.id.as_str());
        let _ = write!(
            h,
            r#"<option value="{}"{}>{}</option>"#,
            esc(&t.id),
            if sel { " selected" } else { "" },
            esc(&t.name)
        );
    }
    h.push_str(r#"</select></label><noscript><button class="btn" type="submit">Apply</button></noscript></form>"#);
    h
}

fn headers(
    p: &Project,
    n: &Newsletter,
    view: Option<&EditionView>,
    r: Option<&Rendered>,
) -> String {
    let (Some(v), Some(r)) = (view, r) else {
        return r#"<p class="placeholder">No message: this edition is not rendered.</p>"#.into();
    };
    let site = p.newsroom().map(|nr| &nr.config.site);
    let host = site
        .map(|s| {
            s.base_url
                .split("://")
                .nth(1)
                .unwrap_or(&s.base_url)
                .split(['/', ':'])
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_default();
    let sub = &v.subscriber;
    let to = match (sub.name.as_str(), sub.email.as_str()) {
        (_, "") => String::new(),
        ("", email) => email.to_string(),
        (name, email) => format!("{name} <{email}>"),
    };
    let mut rows: Vec<(&str, String)> = vec![("From", n.from.clone())];
    if let Some(rt) = &n.reply_to {
        rows.push(("Reply-To", rt.clone()));
    }
    rows.push(("To", to));
    rows.push(("Subject", r.subject.clone()));
    rows.push(("Date", v.slot.at.with_timezone(&n.timezone).to_rfc2822()));
    rows.push(("List-Id", format!("{} <{}.{}>", n.name, n.id, host)));
    rows.push(("MIME-Version", "1.0".into()));
    rows.push(("Content-Type", "multipart/alternative".into()));
    let mut h = String::from(r#"<dl class="headers">"#);
    for (k, val) in rows {
        let _ = write!(h, "<dt>{}:</dt><dd>{}</dd>", esc(k), esc(&val));
    }
    h.push_str("</dl>");
    let _ = write!(
        h,
        r#"<ul class="mime"><li><code>text/plain; charset=utf-8</code><span>{}</span></li><li><code>text/html; charset=utf-8</code><span>{}</span></li></ul>
<p class="placeholder">Delivery adds Message-ID, List-Unsubscribe and DKIM-Signature when it sends.</p>"#,
        esc(&kb(r.text.len())),
        esc(&kb(r.html.len())),
    );
    h
}

fn items_list(p: &Project, n: &Newsletter, view: Option<&EditionView>, editor_url: &str) -> String {
    let Some(v) = view else {
        return String::new();
    };
    let shown: &Edition = v.shown();
    let Some(nr) = p.newsroom() else {
        return String::new();
    };
    let mut h = format!(
        r#"<h2>In this edition <span class="count">{}</span></h2>"#,
        plural(shown.item_count(), "item")
    );
    if shown.item_count() == 0 {
        h.push_str(r#"<p class="placeholder">No items.</p>"#);
        return h;
    }
    let tz = n.timezone;
    let lead = shown.lead().map(|p| p.item.id.as_str());
    let li = |h: &mut String, pl: &crate::edition::Placed| {
        let i = pl.item;
        let line = p.title_line(i);
        let abs = nr.root.join(&i.source);
        let abs_s = abs.to_string_lossy();
        let href = editor_url
            .replace("{path}", &abs_s)
            .replace("{line}", &line.to_string());
        let source = format!("{}:{line}", i.source.to_string_lossy().replace('\\', "/"));
        // With `lead: in_section` the lead stays in its section: say which it is.
        let badge = if shown.top_story().is_none() && lead == Some(i.id.as_str()) {
            r#" <span class="badge badge-lead" title="The edition's lead: the subject and preheader name it">lead</span>"#
        } else {
            ""
        };
        let _ = write!(
            h,
            r#"<li class="item" data-item="{id}"><div class="item-main"><span class="item-title">{title}{badge}</span><span class="item-meta">{date} · priority {prio}{byline}</span></div><a class="source" href="{href}" title="Open {abs} at line {line}">{source}</a></li>"#,
            id = esc(&i.id),
            title = esc(&i.title),
            date = esc(&i
                .date
                .with_timezone(&tz)
                .format("%a %-d %b %H:%M")
                .to_string()),
            prio = i.priority,
            byline = if i.authors.is_empty() {
                String::new()
            } else {
                format!(" · {}", esc(&crate::render::byline(&i.authors)))
            },
            href = esc(&href),
            abs = esc(&abs_s),
            source = esc(&source),
        );
    };
    // The order of the digest: the top story first, then the sections
    // without it.
    if let Some(top) = shown.top_story() {
        h.push_str(r#"<h3 class="section section-top">Top story</h3><ol class="items">"#);
        li(&mut h, top);
        h.push_str("</ol>");
    }
    for s in &shown.sections_below() {
        let title = s.title();
        if !title.is_empty() {
            let _ = write!(h, r#"<h3 class="section">{}</h3>"#, esc(&title));
        }
        h.push_str(r#"<ol class="items">"#);
        for pl in &s.items {
            li(&mut h, pl);
        }
        h.push_str("</ol>");
    }
    h
}

/// What `email.html` or `email.txt` shows when there is no edition to show.
pub enum Part {
    Html,
    Text,
}

/// The rendered part, or (Err) a short explanation of why there is none.
pub fn email_part(
    p: &Project,
    id: &str,
    q: &PageQuery,
    part: Part,
) -> Option<Result<String, String>> {
    let nr = p.newsroom()?;
    let n = nr.config.newsletter(id)?;
    let (at, _) = resolve_at(p, q);
    if !p.offers(n, &q.audience()) {
        return None;
    }
    let view = p.edition(n, at, &q.audience());
    let why = match &view {
        None => "No edition: the schedule has not fired before this time.".to_string(),
        Some(v) => match v.rendered.as_deref() {
            Some(Ok(r)) => {
                return Some(Ok(match part {
                    Part::Html => r.html.clone(),
                    Part::Text => r.text.clone(),
                }));
            }
            Some(Err(d)) => format!("This edition does not render:\n\n{d}"),
            None if v.shown().item_count() == 0 => {
                "No items fall in this edition's window.".to_string()
            }
            None => "The templates have errors: see the preview page.".to_string(),
        },
    };
    Some(Err(match part {
        Part::Text => why,
        Part::Html => placeholder_page(&why),
    }))
}

/// A small page for the iframes when there is nothing to show.
pub fn placeholder_page(message: &str) -> String {
    format!(
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>No edition</title><style>body{{margin:0;font:15px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,sans-serif;color:#5f6368;background:#f6f7f9}}pre,p{{margin:48px auto;max-width:520px;padding:0 24px;white-space:pre-wrap}}</style></head><body><pre>{}</pre></body></html>"#,
        esc(message)
    )
}

/// Anything the preview does not serve.
pub fn not_found() -> String {
    format!(
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Not found · briefing preview</title><link rel="icon" href="{FAVICON}"><link rel="stylesheet" href="/assets/preview.css"></head><body><main class="not-found"><h1>Not found</h1><p>The preview serves its own pages and the editions it renders, nothing else.</p><p><a href="/">All newsletters</a></p></main></body></html>"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }

    #[test]
    fn query_strings_are_encoded_and_skip_empty_values() {
        let q = PageQuery {
            at: Some("2026-11-30T08:00".into()),
            subscriber: Some(String::new()),
            region: Some("tampa-bay".into()),
            topic: Some("a&b c".into()),
        };
        assert_eq!(
            q.query_string(Some(3)),
            "?at=2026-11-30T08%3A00&region=tampa-bay&topic=a%26b%20c&v=3"
        );
        assert_eq!(PageQuery::default().query_string(None), "");
    }

    #[test]
    fn addresses_split_into_name_and_address() {
        assert_eq!(
            split_address("\"Morning Brief\" <am@x.com>"),
            ("Morning Brief".into(), Some("am@x.com".into()))
        );
        assert_eq!(split_address("am@x.com"), ("am@x.com".into(), None));
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(7), "7");
        assert_eq!(thousands(1224), "1,224");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }
}
