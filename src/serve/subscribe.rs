//! The sign-up page (`signup.url`, `/subscribe` by default) and its
//! confirmation link (`<signup.url>/confirm`). A POST of the page's form
//! (or of JSON, from a newsroom's own widget) sends one confirmation
//! message and records nothing; the link opens a page whose button confirms
//! (a GET alone never does, since link scanners open every link); the
//! confirming POST stores the subscriber in the ledger. Every answer to a
//! sign-up looks the same whatever the address's standing, so the page
//! tells nobody who is subscribed.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Instant;

use anyhow::Result;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::json;

use super::pages::{capitalised, layout};
use super::server::{Peer, Shared, html, unavailable, user_agent};
use super::{Endpoint, Route, form, route};
use crate::audience::{AddressProblem, normalize_email};
use crate::config::{Newsletter, Newsroom};
use crate::ledger::{Confirming, StoredSubscriber};
use crate::mail::token::preferences_url;
use crate::render::escape_html as esc;
use crate::signup::limit::{Limiter, PER_CLIENT};
use crate::signup::link::{self, Refusal, Request as Asked};
use crate::signup::notice::{LetterCtx, Notices};
use crate::signup::worker;

/// What the sign-up side of the endpoint serves from.
pub struct Desk {
    pub page: Route,
    pub confirm: Route,
    /// The newsletters the page lists (`signup: false` ones are not).
    letters: Vec<Newsletter>,
    /// Every configured newsletter's id: what an unsubscribe from all is
    /// narrowed to when a reader signs up for some again.
    all_ids: Vec<String>,
    expires: chrono::Duration,
    /// The confirmation worker's queue; `None` when confirmation messages
    /// cannot be sent (a relay setting, the DKIM key, a template): sign-ups
    /// are then answered 503, and the rest of the endpoint (unsubscribes
    /// above all) still works.
    queue: Option<std::sync::mpsc::SyncSender<worker::Job>>,
    worker: Option<std::thread::JoinHandle<()>>,
    stopping: worker::Stopping,
    clients: Limiter,
    preferences_url: String,
    /// False when links could be forged (the development secret on a
    /// public address): sign-ups and confirmations are answered 503.
    open: bool,
}

impl Drop for Desk {
    /// Lets the worker finish the message it is on; what is still queued
    /// is dropped (and counted in the log), so that a stop never waits on
    /// a queue of slow relays.
    fn drop(&mut self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.queue.take();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

impl Desk {
    /// `secret` signs the confirmation links.
    pub fn open(newsroom: &Newsroom, secret: Vec<u8>) -> Result<Desk> {
        let cfg = &newsroom.config;
        let page = route("signup.url", &cfg.signup.url)?;
        let confirm = route("signup.url", &cfg.signup.confirm_url())?;
        let letters: Vec<Newsletter> = (cfg.newsletters.iter())
            .filter(|n| n.signup)
            .cloned()
            .collect();
        let stopping = worker::Stopping::default();
        let started = Notices::new(newsroom).and_then(|notices| {
            let signing = worker::Signing {
                secret,
                confirm_url: confirm.url.clone(),
            };
            worker::start(
                notices,
                letters.clone(),
                newsroom,
                signing,
                stopping.clone(),
            )
        });
        let (queue, worker) = match started {
            Ok((q, w)) => (Some(q), Some(w)),
            Err(e) => {
                tracing::error!(
                    "the sign-up page cannot send confirmation messages, so sign-ups are answered 503 until this is fixed: {e:#}"
                );
                (None, None)
            }
        };
        Ok(Desk {
            page,
            confirm,
            letters,
            all_ids: cfg.newsletters.iter().map(|n| n.id.clone()).collect(),
            expires: cfg.signup.expires,
            queue,
            worker,
            stopping,
            clients: Limiter::new(PER_CLIENT),
            preferences_url: cfg.delivery.preferences.url.clone(),
            open: true,
        })
    }

    /// Closes sign-ups: anyone could sign the links with the published
    /// development secret, and confirm any address.
    pub fn close(&mut self, why: &str) {
        tracing::error!("sign-ups are refused (503): {why}");
        self.open = false;
        self.queue.take();
    }

    fn letter(&self, id: &str) -> Option<&Newsletter> {
        self.letters.iter().find(|n| n.id == id)
    }
}

/// The client a request is from, as the per-client limit counts it: the
/// connection's address, or behind a proxy on this machine the address the
/// proxy appended last to X-Forwarded-For; an IPv6 client by its /64, which
/// is what one subscriber line gets. IPv4 over an IPv6 socket counts as
/// IPv4.
fn client(req: &Request) -> String {
    let peer = req.extensions().get::<Peer>().map(|p| p.0.ip());
    let forwarded = req.headers().get_all("x-forwarded-for").iter().next_back();
    client_key(peer, forwarded.and_then(|v| v.to_str().ok()))
}

fn client_key(peer: Option<IpAddr>, forwarded: Option<&str>) -> String {
    let ip = match peer.map(|p| p.to_canonical()) {
        Some(ip) if ip.is_loopback() => forwarded.and_then(forwarded_ip).unwrap_or(ip),
        Some(ip) => ip,
        None => return "unknown".into(),
    };
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// The last address of an X-Forwarded-For value: `203.0.113.9`,
/// `203.0.113.9:5678`, `2001:db8::1` or `[2001:db8::1]:443`.
fn forwarded_ip(v: &str) -> Option<IpAddr> {
    let last = v.rsplit(',').next()?.trim();
    last.parse::<IpAddr>()
        .or_else(|_| last.parse::<std::net::SocketAddr>().map(|a| a.ip()))
        .or_else(|_| last.trim_start_matches('[').trim_end_matches(']').parse())
        .ok()
}

/// What the form asked for, or what is wrong with each field.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Filled {
    pub email: String,
    pub newsletters: Vec<String>,
    /// The field no person sees: a bot fills it.
    pub honeypot: bool,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FieldErrors {
    pub email: Option<String>,
    pub newsletters: Option<String>,
}

impl FieldErrors {
    fn any(&self) -> bool {
        self.email.is_some() || self.newsletters.is_some()
    }
}

/// The name of the field no person fills in.
const HONEYPOT: &str = "website";

fn filled(fields: &form::Fields) -> Filled {
    Filled {
        email: fields.get("email").unwrap_or_default().trim().to_owned(),
        newsletters: fields.all("newsletter").map(str::to_owned).collect(),
        honeypot: fields.get(HONEYPOT).is_some_and(|v| !v.is_empty()),
    }
}

/// The longest name kept (the list's own limit for display names).
pub const MAX_NAME: usize = 100;

/// The name given on the confirmation page: a display name for the `To`
/// of the newsletters, so one line without what would need quoting.
fn check_name(raw: &str) -> Result<Option<String>, String> {
    let name = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    if name.chars().count() > MAX_NAME {
        return Err(format!("Keep your name to {MAX_NAME} characters."));
    }
    let unsafe_char = |c: char| {
        (c.is_control() && c != '\t') || matches!(c, '<' | '>' | '"' | '\u{2028}' | '\u{2029}')
    };
    if raw.chars().any(unsafe_char) {
        return Err("Write your name without line breaks, quotes or angle brackets.".into());
    }
    Ok(Some(name).filter(|n| !n.is_empty()))
}

fn address_error(p: AddressProblem) -> String {
    format!("This is not an email address we can send to: {p}.")
}

/// Checks each field; on success the normalised address and the
/// newsletters in the newsroom's order.
fn validate(
    letters: &[Newsletter],
    expires: chrono::Duration,
    f: &Filled,
) -> Result<Asked, FieldErrors> {
    let mut errors = FieldErrors::default();
    let email = match f.email.as_str() {
        "" => {
            errors.email = Some("Enter your email address.".into());
            None
        }
        raw => match normalize_email(raw) {
            Ok(e) => Some(e),
            Err(p) => {
                errors.email = Some(address_error(p));
                None
            }
        },
    };
    if (f.newsletters.iter()).any(|id| !letters.iter().any(|n| &n.id == id)) {
        errors.newsletters = Some("The form names a newsletter we do not offer.".into());
    } else if f.newsletters.is_empty() {
        errors.newsletters = Some("Choose at least one newsletter.".into());
    }
    if errors.any() {
        return Err(errors);
    }
    // Whole seconds: the link carries them so.
    let issued = chrono::DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap_or_default();
    let newsletters = (letters.iter())
        .filter(|n| f.newsletters.contains(&n.id))
        .map(|n| n.id.clone())
        .collect();
    Ok(Asked {
        email: email.unwrap_or_default(),
        newsletters,
        issued,
        expires: issued + expires,
    })
}

/// The body of a sign-up POST: the page's form, or JSON
/// (`{"email": …, "newsletters": [ids]}`, either null or left out; other
/// keys, a `name` included, are ignored: the name is asked for on the
/// confirmation page). `Err` carries whether the body was meant as JSON, so that a
/// JSON client hears of its mistake in JSON.
async fn read_signup(req: Request) -> Result<(Filled, bool), (StatusCode, bool)> {
    let json = (req.headers().get(header::CONTENT_TYPE))
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !json {
        return (form::read(req).await)
            .map(|f| (filled(&f), false))
            .map_err(|s| (s, false));
    }
    #[derive(serde::Deserialize)]
    struct Body {
        email: Option<String>,
        newsletters: Option<Vec<String>>,
        website: Option<String>,
    }
    let bytes = axum::body::to_bytes(req.into_body(), super::server::BODY_LIMIT)
        .await
        .map_err(|_| (StatusCode::PAYLOAD_TOO_LARGE, true))?;
    let b: Body = serde_json::from_slice(&bytes).map_err(|_| (StatusCode::BAD_REQUEST, true))?;
    let newsletters = b.newsletters.unwrap_or_default();
    if newsletters.len() > form::MAX_FIELDS {
        return Err((StatusCode::BAD_REQUEST, true));
    }
    Ok((
        Filled {
            email: b.email.unwrap_or_default().trim().to_owned(),
            newsletters,
            honeypot: b.website.is_some_and(|w| !w.is_empty()),
        },
        true,
    ))
}

fn json_answer(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `GET <signup.url>`: the page, with `?newsletter=ID` ticked.
pub async fn page_get(State(ep): State<Shared>, req: Request) -> Response {
    let chosen: Vec<String> =
        form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
            .filter(|(k, _)| k == "newsletter")
            .map(|(_, v)| v.into_owned())
            .filter(|id| ep.signup.letter(id).is_some())
            .collect();
    let f = Filled {
        newsletters: chosen,
        ..Filled::default()
    };
    html(
        StatusCode::OK,
        signup_page(&ep, &f, &FieldErrors::default()),
    )
}

/// Why no confirmation message goes out although the request was fine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quiet {
    Honeypot,
}

/// `POST <signup.url>`: validates, and sends one confirmation message.
pub async fn page_post(State(ep): State<Shared>, req: Request) -> Response {
    let who = client(&req);
    let wants_json = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    let limited = !ep.signup.clients.allow(&who, Instant::now());
    let (f, json) = match read_signup(req).await {
        Ok(v) => v,
        Err((status, true)) => {
            let why = match status {
                StatusCode::PAYLOAD_TOO_LARGE => "the body is too large",
                _ => "the body is not a sign-up: {\"email\": \"…\", \"newsletters\": [\"id\"]}",
            };
            return json_answer(status, json!({ "error": why }));
        }
        Err((status, false)) => return super::server::bad_request(&ep, status),
    };
    let json = json || wants_json;
    if limited {
        tracing::info!(route = "signup", "a client is over the sign-up limit");
        let mut res = match json {
            true => json_answer(
                StatusCode::TOO_MANY_REQUESTS,
                json!({ "error": "too many sign-ups from this network; try again in a few minutes" }),
            ),
            false => html(StatusCode::TOO_MANY_REQUESTS, too_many(&ep)),
        };
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("180"));
        return res;
    }
    let asked = match validate(&ep.signup.letters, ep.signup.expires, &f) {
        Ok(a) => a,
        Err(errors) => {
            return match json {
                true => json_answer(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({ "errors": {
                        "email": errors.email, "newsletters": errors.newsletters,
                    }}),
                ),
                false => html(StatusCode::BAD_REQUEST, signup_page(&ep, &f, &errors)),
            };
        }
    };
    match queue_confirmation(&ep, asked, f.honeypot) {
        Ok(quiet) => {
            if let Some(q) = quiet {
                tracing::info!(route = "signup", why = ?q, "sign-up not queued");
            }
            match json {
                true => json_answer(
                    StatusCode::ACCEPTED,
                    json!({ "status": "check-your-inbox" }),
                ),
                false => html(StatusCode::OK, check_inbox(&ep)),
            }
        }
        Err(()) if json => json_answer(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "error": "sign-ups cannot be taken now; try again later" }),
        ),
        Err(()) => unavailable(&ep),
    }
}

/// Queues the confirmation unless the request is a bot's. Whether the
/// address has had its share, and whether it may be mailed at all, is the
/// worker's to find out, after the answer: every accepted sign-up is
/// answered alike, and as fast. `Err` (the same for every address) when
/// confirmations cannot be sent, or the queue is full.
fn queue_confirmation(ep: &Endpoint, asked: Asked, honeypot: bool) -> Result<Option<Quiet>, ()> {
    // First, so that a broken mailer answers every sign-up alike.
    let queue = ep.signup.queue.as_ref().ok_or(())?;
    if honeypot {
        return Ok(Some(Quiet::Honeypot));
    }
    queue.try_send(worker::Job { asked }).map_err(|_| {
        tracing::error!(
            route = "signup",
            "the confirmation queue is full; sign-up refused"
        );
    })?;
    Ok(None)
}

/// `GET <signup.url>/confirm?…`: what the link asks for, with the button
/// that confirms it. Nothing is recorded.
pub async fn confirm_get(State(ep): State<Shared>, req: Request) -> Response {
    if !ep.signup.open {
        return unavailable(&ep);
    }
    let asked = match verified(&ep, req.uri().query()) {
        Ok(a) => a,
        Err(res) => return res,
    };
    let query = req.uri().query().unwrap_or_default();
    html(StatusCode::OK, confirm_page(&ep, &asked, query, "", None))
}

/// `POST <signup.url>/confirm?…`: the button. Stores the subscriber, then
/// shows the welcome page.
pub async fn confirm_post(State(ep): State<Shared>, req: Request) -> Response {
    if !ep.signup.open {
        return unavailable(&ep);
    }
    let query = req.uri().query().unwrap_or_default().to_owned();
    let asked = match verified(&ep, Some(&query)) {
        Ok(a) => a,
        Err(res) => return res,
    };
    let ua = user_agent(req.headers());
    let fields = match form::read(req).await {
        Ok(f) => f,
        Err(status) => return super::server::bad_request(&ep, status),
    };
    let typed = fields.get("name").unwrap_or_default();
    let name = match check_name(typed) {
        Ok(n) => n,
        Err(e) => {
            let page = confirm_page(&ep, &asked, &query, typed, Some(&e));
            return html(StatusCode::BAD_REQUEST, page);
        }
    };
    let now = Utc::now();
    let evidence = json!({
        "confirmed_at": now.to_rfc3339(),
        "user_agent": ua.as_deref().map(super::clip),
        "link_issued_at": asked.issued.to_rfc3339(),
        // Anyone could have signed this link: such a row is for trying the
        // page out, and no send over SMTP mails it.
        "development_secret": ep.secrets.iter().any(|s| s == crate::mail::token::DEV_SECRET),
    });
    let rows: Vec<StoredSubscriber> = (asked.newsletters.iter())
        .map(|id| StoredSubscriber {
            email: asked.email.clone(),
            newsletter: id.clone(),
            name: name.clone(),
            consent_at: now,
            source: "signup page".into(),
            evidence: evidence.clone(),
        })
        .collect();
    let rows_len = rows.len();
    let confirming = Confirming {
        newsletters: ep.signup.all_ids.clone(),
        issued: asked.issued,
    };
    let done = ep
        .store
        .call(move |l| l.add_subscribers(&rows, &confirming))
        .await;
    let Ok(done) = done else {
        return unavailable(&ep);
    };
    tracing::info!(
        route = "signup",
        newsletters = %asked.newsletters.join(","),
        added = done.added,
        renewed = done.renewed,
        lifted = done.lifted,
        stale = done.stale,
        "subscribed"
    );
    if done.stale == rows_len {
        return html(StatusCode::CONFLICT, stale(&ep));
    }
    html(StatusCode::OK, welcome(&ep, &asked))
}

/// The request a confirmation link carries, or the page that refuses it.
/// Newsletters no longer offered are dropped; a link left with none is
/// gone.
fn verified(ep: &Endpoint, query: Option<&str>) -> Result<Asked, Response> {
    let mut asked =
        link::verify(query.unwrap_or_default(), &ep.secrets, Utc::now()).map_err(|why| {
            let status = match why {
                Refusal::Malformed(_) => StatusCode::BAD_REQUEST,
                Refusal::Forged => StatusCode::FORBIDDEN,
                Refusal::Expired => StatusCode::GONE,
            };
            tracing::info!(status = status.as_u16(), why = ?why, "refused a confirmation link");
            html(status, refused(ep, why))
        })?;
    asked
        .newsletters
        .retain(|id| ep.signup.letter(id).is_some());
    if asked.newsletters.is_empty() {
        return Err(html(
            StatusCode::NOT_FOUND,
            super::pages::gone(&ep.site, &ep.language),
        ));
    }
    Ok(asked)
}

fn letters_list(b: &mut String, letters: &[LetterCtx]) {
    b.push_str("<ul class=\"letters\">\n");
    for n in letters {
        let _ = write!(b, "<li><span class=\"letter-name\">{}</span>", esc(n.name));
        if !n.cadence.is_empty() {
            let _ = write!(b, "<span class=\"cadence\">{}</span>", esc(n.cadence));
        }
        b.push_str("</li>\n");
    }
    b.push_str("</ul>\n");
}

/// The sign-up page: every public newsletter with its pitch and cadence, a
/// box each, and the address, errors beside their fields.
pub fn signup_page(ep: &Endpoint, f: &Filled, errors: &FieldErrors) -> String {
    let site = esc(&ep.site);
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>Newsletters from {site}</h1>\n<p class=\"for\">Pick the ones you want; we send a link to confirm before anything else.</p>\n"
    );
    if errors.any() {
        b.push_str("<p class=\"error\" role=\"alert\">Please fix what is marked below.</p>\n");
    }
    let _ = writeln!(
        b,
        "<form method=\"post\" action=\"{}\" novalidate>",
        esc(&ep.signup.page.path)
    );
    b.push_str("<fieldset>\n<legend>Newsletters</legend>\n");
    if let Some(e) = &errors.newsletters {
        let _ = writeln!(
            b,
            "<p class=\"field-error\" id=\"newsletters-error\">{}</p>",
            esc(e)
        );
    }
    b.push_str("<ul class=\"letters\">\n");
    for n in &ep.signup.letters {
        let checked = if f.newsletters.contains(&n.id) {
            " checked"
        } else {
            ""
        };
        let described = if errors.newsletters.is_some() {
            " aria-describedby=\"newsletters-error\""
        } else {
            ""
        };
        let _ = write!(
            b,
            "<li data-newsletter=\"{id}\"><label><input type=\"checkbox\" name=\"newsletter\" value=\"{id}\"{checked}{described}><span><span class=\"letter-name\">{name}</span>",
            id = esc(&n.id),
            name = esc(&n.name)
        );
        if let Some(c) = &n.cadence {
            let _ = write!(b, "<span class=\"cadence\">{}</span>", esc(c));
        }
        if let Some(d) = &n.description {
            let _ = write!(b, "<span class=\"pitch\">{}</span>", esc(d));
        }
        b.push_str("</span></label></li>\n");
    }
    b.push_str("</ul>\n</fieldset>\n");
    field(
        &mut b,
        "email",
        "Email address",
        "email",
        &f.email,
        errors.email.as_deref(),
        "email",
        true,
    );
    // No person sees or fills this; bots that fill every field do.
    let _ = writeln!(
        b,
        "<div class=\"hp\" aria-hidden=\"true\"><label>Leave this empty <input type=\"text\" name=\"{HONEYPOT}\" tabindex=\"-1\" autocomplete=\"off\"></label></div>"
    );
    b.push_str("<button type=\"submit\" class=\"primary\">Subscribe</button>\n</form>\n");
    let _ = writeln!(
        b,
        "<p class=\"hint\">Every message has a one-click unsubscribe link. We use your address for these newsletters only.</p>"
    );
    layout(&ep.site, &ep.language, "signup", "Sign up", &b)
}

#[allow(clippy::too_many_arguments)]
fn field(
    b: &mut String,
    name: &str,
    label: &str,
    kind: &str,
    value: &str,
    error: Option<&str>,
    autocomplete: &str,
    required: bool,
) {
    let invalid = match error {
        Some(_) => format!(" aria-invalid=\"true\" aria-describedby=\"{name}-error\""),
        None => String::new(),
    };
    let req = if required { " required" } else { "" };
    let _ = write!(
        b,
        "<div class=\"field\"><label for=\"{name}\">{label}</label><input type=\"{kind}\" id=\"{name}\" name=\"{name}\" value=\"{}\" autocomplete=\"{autocomplete}\" maxlength=\"254\"{req}{invalid}>",
        esc(value)
    );
    if let Some(e) = error {
        let _ = write!(
            b,
            "<p class=\"field-error\" id=\"{name}-error\">{}</p>",
            esc(e)
        );
    }
    b.push_str("</div>\n");
}

/// After any accepted sign-up: the same words whatever was or was not
/// sent.
fn check_inbox(ep: &Endpoint) -> String {
    let b = "<h1>Check your inbox</h1>\n<p role=\"status\">If that address can get mail from us, a message with a link to confirm is on its way. Nothing starts until you confirm.</p>\n<p class=\"hint\">Nothing after a few minutes? Look in your spam folder, or sign up again.</p>\n";
    layout(&ep.site, &ep.language, "check-inbox", "Check your inbox", b)
}

fn too_many(ep: &Endpoint) -> String {
    let b = "<h1>Too many sign-ups</h1>\n<p role=\"alert\">We have had many sign-ups from your network in the last few minutes. Please try again in a few minutes.</p>\n";
    layout(&ep.site, &ep.language, "limited", "Too many sign-ups", b)
}

fn confirm_page(
    ep: &Endpoint,
    asked: &Asked,
    query: &str,
    name: &str,
    error: Option<&str>,
) -> String {
    let letters: Vec<LetterCtx> = (asked.newsletters.iter())
        .filter_map(|id| ep.signup.letter(id))
        .map(LetterCtx::from)
        .collect();
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>Confirm your subscription</h1>\n<p>Send these newsletters to {}:</p>\n",
        esc(&asked.email)
    );
    letters_list(&mut b, &letters);
    let _ = writeln!(
        b,
        "<form method=\"post\" action=\"{}\" novalidate>",
        esc(&format!("?{query}"))
    );
    field(
        &mut b,
        "name",
        "Your name (optional, for the greeting)",
        "text",
        name,
        error,
        "name",
        false,
    );
    b.push_str(
        "<button type=\"submit\" class=\"primary\">Confirm my subscription</button>\n</form>\n",
    );
    b.push_str("<p class=\"hint\">Did not ask for this? Close this page: nothing happens unless you press the button.</p>\n");
    layout(
        &ep.site,
        &ep.language,
        "confirm-signup",
        "Confirm your subscription",
        &b,
    )
}

/// A link used after its reader unsubscribed: it confirms nothing.
fn stale(ep: &Endpoint) -> String {
    let b = format!(
        "<h1>This link no longer confirms</h1>\n<p>You unsubscribed after it was sent, and that stands. <a href=\"{}\">Sign up again</a> to subscribe.</p>\n",
        esc(&ep.signup.page.path)
    );
    layout(&ep.site, &ep.language, "stale", "Link no longer valid", &b)
}

fn welcome(ep: &Endpoint, asked: &Asked) -> String {
    let secret = ep.secrets.first().cloned().unwrap_or_default();
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>You are subscribed</h1>\n<p role=\"status\">{} will get:</p>\n<ul class=\"letters\">\n",
        esc(&asked.email)
    );
    for n in asked
        .newsletters
        .iter()
        .filter_map(|id| ep.signup.letter(id))
    {
        let _ = write!(
            b,
            "<li data-newsletter=\"{}\"><span class=\"letter-name\">{}</span>",
            esc(&n.id),
            esc(&n.name)
        );
        if let Some(c) = &n.cadence {
            let _ = write!(b, "<span class=\"cadence\">{}</span>", esc(c));
        }
        if let Ok(url) = preferences_url(&ep.signup.preferences_url, &n.id, &asked.email, &secret) {
            let _ = write!(
                b,
                "<a class=\"sections\" href=\"{}\">Choose your sections</a>",
                esc(&url)
            );
        }
        b.push_str("</li>\n");
    }
    b.push_str("</ul>\n<p>The next edition of each comes to your inbox. Every message links to these choices and to a one-click unsubscribe.</p>\n");
    layout(
        &ep.site,
        &ep.language,
        "subscribed",
        "You are subscribed",
        &b,
    )
}

fn refused(ep: &Endpoint, why: Refusal) -> String {
    let b = match why {
        Refusal::Malformed(m) => format!(
            "<h1>This link is incomplete</h1>\n<p>{}. Nothing was changed. Open the link from the email again, or copy all of it into the address bar.</p>\n",
            esc(&capitalised(m))
        ),
        Refusal::Forged => "<h1>This link is not valid</h1>\n<p>It was changed, or it comes from an old email whose links no longer work. Nothing was changed. Sign up again to get a new link.</p>\n".to_string(),
        Refusal::Expired => format!(
            "<h1>This link has expired</h1>\n<p>Nothing was changed. <a href=\"{}\">Sign up again</a> to get a new link.</p>\n",
            esc(&ep.signup.page.path)
        ),
    };
    layout(&ep.site, &ep.language, "refused", "Link not valid", &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_its_address_or_what_a_proxy_here_forwarded() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        for (peer, xff, want) in [
            ("203.0.113.7", None, "203.0.113.7"),
            // A client's own header counts for nothing.
            ("203.0.113.7", Some("198.51.100.1"), "203.0.113.7"),
            ("127.0.0.1", Some("198.51.100.1"), "198.51.100.1"),
            ("127.0.0.1", Some("spoofed, 198.51.100.1"), "198.51.100.1"),
            ("127.0.0.1", Some("198.51.100.1:5678"), "198.51.100.1"),
            (
                "127.0.0.1",
                Some("[2001:db8:1:2:3::9]:443"),
                "2001:db8:1:2::/64",
            ),
            ("127.0.0.1", Some("unknown"), "127.0.0.1"),
            ("127.0.0.1", None, "127.0.0.1"),
            ("::1", Some("198.51.100.1"), "198.51.100.1"),
            ("::ffff:127.0.0.1", Some("198.51.100.1"), "198.51.100.1"),
            // IPv4 clients of a dual-stack socket are each their own.
            ("::ffff:203.0.113.7", None, "203.0.113.7"),
            ("::ffff:203.0.113.8", None, "203.0.113.8"),
            ("2001:db8:aa:bb:1::1", None, "2001:db8:aa:bb::/64"),
            ("2001:db8:aa:bb:2::2", None, "2001:db8:aa:bb::/64"),
        ] {
            assert_eq!(client_key(ip(peer), xff), want, "{peer} {xff:?}");
        }
        assert_eq!(client_key(None, Some("198.51.100.1")), "unknown");
    }

    fn letters() -> Vec<Newsletter> {
        let text = "site: { name: T, base_url: https://news.example.com, timezone: UTC, postal_address: none }\nregions: [{ id: w, name: W }]\ntopics: [{ id: t, name: T }]\nnewsletters:\n  am: { name: AM, from: a@news.example.com }\n  pm: { name: PM, from: p@news.example.com }\n";
        let room = Newsroom::from_text(std::path::Path::new("config.yaml"), text.into()).unwrap();
        room.config.newsletters
    }

    #[test]
    fn a_name_is_one_plain_line_or_refused() {
        assert_eq!(check_name("  Ana \t Lima "), Ok(Some("Ana Lima".into())));
        assert_eq!(check_name(" "), Ok(None));
        for bad in [
            "Eve\r\nBcc: x",
            "a\u{2028}b",
            "<b>",
            "\"q\"",
            &"x".repeat(101),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_form_is_a_sign_up_we_can_send_or_errors_beside_fields(
            email in "\\PC{0,40}|[a-z.+]{1,10}@[a-z]{1,8}\\.(com|org)",
            ids in proptest::collection::vec("am|pm|[a-z]{0,3}", 0..4),
        ) {
            let letters = letters();
            let f = Filled { email: email.trim().into(), newsletters: ids.clone(), honeypot: false };
            match validate(&letters, chrono::Duration::hours(1), &f) {
                Ok(a) => {
                    let normal = normalize_email(&a.email);
                    proptest::prop_assert_eq!(normal.as_deref(), Ok(a.email.as_str()));
                    proptest::prop_assert!(!a.newsletters.is_empty());
                    proptest::prop_assert!(a.newsletters.iter().all(|id| ids.contains(id)));
                    // The link it makes reads back as itself.
                    let again = link::verify(&a.query(b"k"), &[b"k".to_vec()], a.issued);
                    proptest::prop_assert_eq!(again, Ok(a));
                }
                Err(e) => proptest::prop_assert!(e.any()),
            }
        }
    }
}
