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
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::json;

use super::pages::{capitalised, layout};
use super::server::{Peer, Shared, html, unavailable, user_agent};
use super::{Endpoint, Route, form, liftable, route};
use crate::audience::{self, AddressProblem, normalize_email};
use crate::config::{Newsletter, Newsroom};
use crate::ledger::{StoredSubscriber, Suppression, SuppressionScope};
use crate::mail::token::preferences_url;
use crate::render::escape_html as esc;
use crate::signup::limit::{Limiter, PER_ADDRESS, PER_CLIENT};
use crate::signup::link::{self, MAX_NAME, Refusal, Request as Asked};
use crate::signup::notice::{LetterCtx, Notices};

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
    /// `None` when confirmation messages cannot be sent (a relay setting,
    /// the DKIM key, a template): sign-ups are then answered 503, and the
    /// rest of the endpoint (unsubscribes above all) still works.
    notices: Option<Notices>,
    clients: Limiter,
    addresses: Limiter,
    suppressions_file: Option<PathBuf>,
    preferences_url: String,
}

impl Desk {
    pub fn open(newsroom: &Newsroom) -> Result<Desk> {
        let cfg = &newsroom.config;
        let page = route("signup.url", &cfg.signup.url)?;
        let confirm = route("signup.url", &cfg.signup.confirm_url())?;
        Ok(Desk {
            page,
            confirm,
            letters: (cfg.newsletters.iter())
                .filter(|n| n.signup)
                .cloned()
                .collect(),
            all_ids: cfg.newsletters.iter().map(|n| n.id.clone()).collect(),
            expires: cfg.signup.expires,
            notices: Notices::new(newsroom)
                .inspect_err(|e| {
                    tracing::error!(
                        "the sign-up page cannot send confirmation messages, so sign-ups are answered 503 until this is fixed: {e:#}"
                    )
                })
                .ok(),
            clients: Limiter::new(PER_CLIENT),
            addresses: Limiter::new(PER_ADDRESS),
            suppressions_file: cfg.delivery.suppressions.clone(),
            preferences_url: cfg.delivery.preferences.url.clone(),
        })
    }

    fn letter(&self, id: &str) -> Option<&Newsletter> {
        self.letters.iter().find(|n| n.id == id)
    }
}

/// The client a request is from, as the per-client limit counts it: the
/// connection's address, or behind a proxy on this machine the address the
/// proxy appended last to X-Forwarded-For; an IPv6 client by its /64, which
/// is what one subscriber line gets.
fn client(req: &Request) -> String {
    let peer = req.extensions().get::<Peer>().map(|p| p.0.ip());
    let forwarded = || {
        let v = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .next_back()?;
        v.to_str()
            .ok()?
            .rsplit(',')
            .next()?
            .trim()
            .parse::<IpAddr>()
            .ok()
    };
    let ip = match peer {
        Some(ip) if ip.is_loopback() => forwarded().unwrap_or(ip),
        Some(ip) => ip,
        None => return "unknown".into(),
    };
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// What the form asked for, or what is wrong with each field.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Filled {
    pub email: String,
    pub name: String,
    pub newsletters: Vec<String>,
    /// The field no person sees: a bot fills it.
    pub honeypot: bool,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FieldErrors {
    pub email: Option<String>,
    pub name: Option<String>,
    pub newsletters: Option<String>,
}

impl FieldErrors {
    fn any(&self) -> bool {
        self.email.is_some() || self.name.is_some() || self.newsletters.is_some()
    }
}

/// The name of the field no person fills in.
const HONEYPOT: &str = "website";

fn filled(fields: &form::Fields) -> Filled {
    Filled {
        email: fields.get("email").unwrap_or_default().trim().to_owned(),
        name: fields.get("name").unwrap_or_default().trim().to_owned(),
        newsletters: fields.all("newsletter").map(str::to_owned).collect(),
        honeypot: fields.get(HONEYPOT).is_some_and(|v| !v.is_empty()),
    }
}

fn address_error(p: AddressProblem) -> String {
    format!("This is not an email address we can send to: {p}.")
}

/// Checks each field; on success the normalised address, the name, and
/// the newsletters in the newsroom's order.
fn validate(desk: &Desk, f: &Filled) -> Result<Asked, FieldErrors> {
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
    if f.name.chars().count() > MAX_NAME {
        errors.name = Some(format!("Keep your name to {MAX_NAME} characters."));
    } else if f
        .name
        .chars()
        .any(|c| c.is_control() || matches!(c, '<' | '>' | '"'))
    {
        errors.name = Some("Write your name without line breaks, quotes or angle brackets.".into());
    }
    if f.newsletters.iter().any(|id| desk.letter(id).is_none()) {
        errors.newsletters = Some("The form names a newsletter we do not offer.".into());
    } else if f.newsletters.is_empty() {
        errors.newsletters = Some("Choose at least one newsletter.".into());
    }
    if errors.any() {
        return Err(errors);
    }
    let newsletters = (desk.letters.iter())
        .filter(|n| f.newsletters.contains(&n.id))
        .map(|n| n.id.clone())
        .collect();
    Ok(Asked {
        email: email.unwrap_or_default(),
        newsletters,
        name: Some(f.name.clone()).filter(|n| !n.is_empty()),
        expires: Utc::now() + desk.expires,
    })
}

/// The body of a sign-up POST: the page's form, or JSON
/// (`{"email": …, "name": …, "newsletters": [ids]}`).
async fn read_signup(req: Request) -> Result<(Filled, bool), StatusCode> {
    let json = (req.headers().get(header::CONTENT_TYPE))
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !json {
        return form::read(req).await.map(|f| (filled(&f), false));
    }
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(default)]
        email: String,
        #[serde(default)]
        name: String,
        #[serde(default)]
        newsletters: Vec<String>,
        #[serde(default)]
        website: String,
    }
    let bytes = axum::body::to_bytes(req.into_body(), super::server::BODY_LIMIT)
        .await
        .map_err(|_| StatusCode::PAYLOAD_TOO_LARGE)?;
    let b: Body = serde_json::from_slice(&bytes).map_err(|_| StatusCode::BAD_REQUEST)?;
    if b.newsletters.len() > form::MAX_FIELDS {
        return Err(StatusCode::BAD_REQUEST);
    }
    Ok((
        Filled {
            email: b.email.trim().to_owned(),
            name: b.name.trim().to_owned(),
            newsletters: b.newsletters,
            honeypot: !b.website.is_empty(),
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
    AddressLimit,
    Suppressed,
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
        Err(status) => return super::server::bad_request(&ep, status),
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
    let asked = match validate(&ep.signup, &f) {
        Ok(a) => a,
        Err(errors) => {
            return match json {
                true => json_answer(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({ "errors": {
                        "email": errors.email, "name": errors.name, "newsletters": errors.newsletters,
                    }}),
                ),
                false => html(StatusCode::BAD_REQUEST, signup_page(&ep, &f, &errors)),
            };
        }
    };
    match send_confirmation(&ep, asked, f.honeypot).await {
        Ok(quiet) => {
            if let Some(q) = quiet {
                tracing::info!(route = "signup", why = ?q, "no confirmation sent");
            }
            match json {
                true => json_answer(
                    StatusCode::ACCEPTED,
                    json!({ "status": "check-your-inbox" }),
                ),
                false => html(StatusCode::OK, check_inbox(&ep)),
            }
        }
        Err(e) => {
            tracing::error!(
                route = "signup",
                "cannot send a confirmation message: {e:#}"
            );
            unavailable(&ep)
        }
    }
}

/// Sends the confirmation unless the request is a bot's, the address has
/// had its share, or it must not be mailed; `Ok(Some(why))` when nothing
/// was sent, so that the answer is the same either way.
async fn send_confirmation(
    ep: &Endpoint,
    mut asked: Asked,
    honeypot: bool,
) -> Result<Option<Quiet>> {
    // First, so that a broken mailer answers every sign-up alike.
    let notices = (ep.signup.notices.as_ref()).ok_or_else(|| {
        anyhow::anyhow!("confirmation messages cannot be sent (see the error at startup)")
    })?;
    if honeypot {
        return Ok(Some(Quiet::Honeypot));
    }
    let key = asked.email.to_ascii_lowercase();
    if !ep.signup.addresses.allow(&key, Instant::now()) {
        return Ok(Some(Quiet::AddressLimit));
    }
    let blocked = blocked(ep, &asked.email).await?;
    asked
        .newsletters
        .retain(|id| !blocked.iter().any(|b| b.as_ref().is_none_or(|b| b == id)));
    if asked.newsletters.is_empty() {
        return Ok(Some(Quiet::Suppressed));
    }
    let secret = ep.secrets.first().cloned().unwrap_or_default();
    let url = format!("{}?{}", ep.signup.confirm.url, asked.query(&secret));
    let letters: Vec<&Newsletter> = (asked.newsletters.iter())
        .filter_map(|id| ep.signup.letter(id))
        .collect();
    let issued = asked.expires - ep.signup.expires;
    let (envelope, to, message) = notices.compose(&asked, &letters, &url, issued)?;
    let receipt = notices.deliver(&envelope, &to, message).await?;
    tracing::info!(route = "signup", newsletters = %asked.newsletters.join(","), "confirmation sent");
    tracing::debug!(address = %asked.email, receipt, "confirmation sent");
    Ok(None)
}

/// The newsletters `email` must not be mailed about: `None` for every one.
/// Only what the reader asked for themselves may be undone by signing up
/// again (a bounce, a complaint or the newsroom's decision may not).
async fn blocked(ep: &Endpoint, email: &str) -> Result<Vec<Option<String>>> {
    let address = email.to_ascii_lowercase();
    let entries: Vec<Suppression> = ep
        .store
        .call(move |l| l.suppressions_of(&address))
        .await
        .map_err(|_| anyhow::anyhow!("the ledger does not answer"))?;
    let mut out: Vec<Option<String>> = (entries.into_iter())
        .filter(|s| !liftable(s.reason))
        .map(|s| match s.scope {
            SuppressionScope::All => None,
            SuppressionScope::Newsletter(id) => Some(id),
        })
        .collect();
    if let Some(path) = ep.signup.suppressions_file.clone() {
        let email = email.to_owned();
        let listed = tokio::task::spawn_blocking(move || {
            audience::load_suppressions(&path).map(|s| s.contains(&email))
        })
        .await??;
        if listed {
            out.push(None);
        }
    }
    Ok(out)
}

/// `GET <signup.url>/confirm?…`: what the link asks for, with the button
/// that confirms it. Nothing is recorded.
pub async fn confirm_get(State(ep): State<Shared>, req: Request) -> Response {
    let asked = match verified(&ep, req.uri().query()) {
        Ok(a) => a,
        Err(res) => return res,
    };
    html(
        StatusCode::OK,
        confirm_page(&ep, &asked, req.uri().query().unwrap_or_default()),
    )
}

/// `POST <signup.url>/confirm?…`: the button. Stores the subscriber, then
/// shows the welcome page.
pub async fn confirm_post(State(ep): State<Shared>, req: Request) -> Response {
    let query = req.uri().query().unwrap_or_default().to_owned();
    let asked = match verified(&ep, Some(&query)) {
        Ok(a) => a,
        Err(res) => return res,
    };
    let ua = user_agent(req.headers());
    let now = Utc::now();
    let evidence = json!({
        "confirmed_at": now.to_rfc3339(),
        "user_agent": ua.as_deref().map(super::clip),
        "link_issued_at": (asked.expires - ep.signup.expires).to_rfc3339(),
    });
    let rows: Vec<StoredSubscriber> = (asked.newsletters.iter())
        .map(|id| StoredSubscriber {
            email: asked.email.clone(),
            newsletter: id.clone(),
            name: asked.name.clone(),
            consent_at: now,
            source: "signup page".into(),
            evidence: evidence.clone(),
        })
        .collect();
    let all = ep.signup.all_ids.clone();
    let done = ep
        .store
        .call(move |l| l.add_subscribers(&rows, Some(&all)))
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
        "subscribed"
    );
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
/// box each, the address and an optional name, errors beside their fields.
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
    field(
        &mut b,
        "name",
        "Your name (optional)",
        "text",
        &f.name,
        errors.name.as_deref(),
        "name",
        false,
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

fn confirm_page(ep: &Endpoint, asked: &Asked, query: &str) -> String {
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
        "<form method=\"post\" action=\"{}\"><button type=\"submit\" class=\"primary\">Confirm my subscription</button></form>",
        esc(&format!("?{query}"))
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
