//! What subscribers get: snapshot tests of the rendered text and HTML, the
//! HTML validated by tidy, and the email-safety rules checked on the output.

use crate::support::Newsroom;

const AT: &str = "2026-11-30T08:00";

fn built(n: &Newsroom) -> (String, String) {
    n.run(&["build", "--at", AT, "-n", "am"]).success();
    (
        n.read("out/am/2026-11-30T0600/email.html"),
        n.read("out/am/2026-11-30T0600/email.txt"),
    )
}

#[test]
fn text_part_snapshot() {
    let (_, text) = built(&Newsroom::fixture("basic"));
    insta::assert_snapshot!("basic_am_email_txt", text);
}

#[test]
fn html_part_snapshot() {
    let (html, _) = built(&Newsroom::fixture("basic"));
    insta::assert_snapshot!("basic_am_email_html", html);
}

fn tidy(path: &std::path::Path) -> (i32, String) {
    let out = std::process::Command::new("tidy")
        .args(["-q", "-e"])
        .arg(path)
        .output()
        .expect(
            "`tidy` must be installed for this test (Debian package `tidy`; .ci/run installs it)",
        );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_sample_edition_passes_tidy_without_errors_or_warnings() {
    let n = Newsroom::fixture(".");
    n.run(&["build", "--at", AT]).success();
    let mut checked = 0;
    for nl in std::fs::read_dir(n.path().join("out")).unwrap() {
        for ed in std::fs::read_dir(nl.unwrap().path()).unwrap() {
            let html = ed.unwrap().path().join("email.html");
            let (code, report) = tidy(&html);
            assert_eq!(code, 0, "tidy on {}:\n{report}", html.display());
            checked += 1;
        }
    }
    assert_eq!(checked, 6);
}

#[test]
fn html_is_email_safe() {
    let n = Newsroom::fixture(".");
    n.run(&["build", "--at", AT, "-n", "am"]).success();
    let html = n.read("out/am/2026-11-30T0600/email.html");
    assert!(html.contains("<html lang=\"en\""), "lang on <html>");
    // The preheader is the first thing in the body, and hidden.
    let body = &html[html.find("<body").unwrap()..];
    let pre = body
        .find("Congressional negotiators return")
        .expect("preheader text");
    assert!(pre < 600, "preheader right after <body>");
    assert!(body[..pre].contains("display: none") || body[..pre].contains("display:none"));
    // Layout tables are presentational; item tables are real tables.
    let tables =
        html.matches("<table").count() - html.matches("<table class=\"data-table\"").count();
    assert!(tables >= 3);
    assert_eq!(
        tables,
        html.matches("role=\"presentation\"").count(),
        "every layout table has role=presentation"
    );
    // A browser looks for the encoding in the first 1,024 bytes.
    let charset = html
        .find("<meta charset=\"utf-8\">")
        .expect("a meta charset");
    assert!(charset < 1024, "<meta charset> at byte {charset}");
    // Images have alt text and absolute sources.
    for img in html.split("<img").skip(1) {
        let tag = &img[..img.find('>').unwrap()];
        assert!(tag.contains("alt=\""), "img without alt: {tag}");
        assert!(tag.contains("src=\"https://"), "relative img: {tag}");
    }
    // Every link is absolute.
    for href in html.split("href=\"").skip(1) {
        assert!(
            href.starts_with("https://") || href.starts_with("mailto:"),
            "relative link: {}",
            &href[..40.min(href.len())]
        );
    }
    // CSS is inlined (rules copied into style attributes), no scripts anywhere.
    assert!(html.matches("style=\"").count() > 20);
    assert!(!html.to_lowercase().contains("<script"));
    assert!(
        html.contains("max-width: 600px")
            || html.contains("max-width:600px")
            || html.contains("width=\"600\"")
    );
}

#[test]
fn front_matter_values_are_escaped_in_html_and_plain_in_text() {
    let n = Newsroom::fixture("basic").write(
        "content/national/xss.md",
        "---\ntitle: \"<script>alert('x')</script> & \\\"quotes\\\"\"\ndate: 2026-11-29T10:30:00-05:00\nregion: national\ntopic: politics\nsummary: \"<img src=x onerror=alert(1)>\"\nauthor: \"<b>Eve</b>\"\n---\nBody <script>alert(2)</script>\n",
    );
    let (html, text) = built(&n);
    assert!(!html.contains("<script>"), "script tag survived");
    assert!(!html.contains("<img src=x"), "summary HTML survived");
    assert!(!html.contains("<b>Eve</b>"));
    assert!(html.contains("&lt;script&gt;alert("));
    // Not escaped in the text part; only the quotes become typographic,
    // as in the body and in the HTML part.
    assert!(
        text.contains("<script>alert(\u{2018}x\u{2019})</script> & \u{201c}quotes\u{201d}"),
        "text part keeps the title as written: {text}"
    );
    assert!(
        html.contains("alert(\u{2018}x\u{2019})"),
        "same quotes in both parts"
    );
}

#[test]
fn every_sample_edition_declares_its_charset_early() {
    let n = Newsroom::fixture(".");
    n.run(&["build", "--at", AT]).success();
    for nl in std::fs::read_dir(n.path().join("out")).unwrap() {
        for ed in std::fs::read_dir(nl.unwrap().path()).unwrap() {
            let html = std::fs::read_to_string(ed.unwrap().path().join("email.html")).unwrap();
            let at = html.find("<meta charset=\"utf-8\">").unwrap();
            assert!(at < 1024, "<meta charset> at byte {at}");
        }
    }
}

/// The text between `from` and the next `to` after it.
fn between<'a>(s: &'a str, from: &str, to: &str) -> &'a str {
    let start = s.find(from).unwrap_or_else(|| panic!("no {from:?} in {s}"));
    let end = s[start..]
        .find(to)
        .map_or(s.len(), |i| start + i + to.len());
    &s[start..end]
}

#[test]
fn the_lead_opens_the_digest_and_agrees_with_subject_and_preheader() {
    // The sample World Affairs edition: its lead (priority 1) is the
    // malaria story, the last of six in section order.
    let n = Newsroom::fixture(".");
    n.run(&["build", "--at", "2026-11-27T13:00", "-n", "world"])
        .success();
    let ed = n.json("out/world/2026-11-27T1200/edition.json");
    let html = n.read("out/world/2026-11-27T1200/email.html");
    let text = n.read("out/world/2026-11-27T1200/email.txt");
    let title = "Malaria shot cuts severe cases by two-thirds in trial";
    assert_eq!(ed["subject"], format!("World Affairs: {title}"), "{ed:#}");
    let summary = "A late-stage trial of a single-dose malaria vaccine found strong protection in young children over two transmission seasons.";
    assert_eq!(ed["preheader"], summary);
    // The first story of both parts, and only once.
    let first_html = html.find("class=\"top-title\"").expect("a top story");
    assert!(html[first_html..].find(title).unwrap() < 300);
    assert!(!html[..first_html].contains("class=\"item-title\""));
    assert_eq!(
        html.matches(title).count(),
        2,
        "the title and the top story's headline"
    );
    let body = &text[text.find("TOP STORY").expect("a top story")..];
    assert!(
        body.starts_with("TOP STORY · HEALTH\n=================="),
        "{body}"
    );
    assert!(body.contains(&format!("\n\n{title}\n")));
    assert_eq!(text.matches(title).count(), 1);
    // Each section heading comes after it.
    assert!(text.find("Politics\n--------").unwrap() > text.find("TOP STORY").unwrap());

    // `lead: in_section` is the old layout: the lead stays in its section.
    let n = Newsroom::fixture(".").edit(
        "config.yaml",
        "  world:\n",
        "  world:\n    lead: in_section\n",
    );
    n.run(&["build", "--at", "2026-11-27T13:00", "-n", "world"])
        .success();
    let html = n.read("out/world/2026-11-27T1200/email.html");
    let text = n.read("out/world/2026-11-27T1200/email.txt");
    assert!(!html.contains("class=\"top-title\"") && !text.contains("TOP STORY"));
    assert!(text.find(title).unwrap() > text.find("Health\n------").unwrap());
}

#[test]
fn a_template_that_knows_only_sections_still_shows_the_lead() {
    let n = Newsroom::fixture("basic").write(
        "templates/digest.txt",
        "{% for s in sections %}{% for i in s.items %}{{ i.title }}\n{% endfor %}{% endfor %}",
    );
    let (_, text) = built(&n);
    assert!(
        text.starts_with("Senate reaches a late deal on the stopgap bill\n"),
        "{text}"
    );
}

#[test]
fn go_deeper_appears_once_per_story() {
    // The sample malaria story: its body ends with its own Go deeper, and
    // it has a `link:` to the full story.
    let n = Newsroom::fixture(".");
    n.run(&["build", "--at", "2026-11-27T13:00", "-n", "world"])
        .success();
    let html = n.read("out/world/2026-11-27T1200/email.html");
    let text = n.read("out/world/2026-11-27T1200/email.txt");
    let story = between(&text, "TOP STORY", "Politics\n");
    assert_eq!(story.matches("Go deeper").count(), 1, "{story}");
    assert!(story.contains("\nFull story: https://news.example.com/2026/11/26/malaria-trial\n"));
    let story = between(&html, "class=\"top-story\"", "class=\"topic\"");
    assert_eq!(story.matches("Go deeper").count(), 1, "{story}");
    assert!(story.contains("Full story \u{2192}</a>"), "{story}");

    // A body whose Go deeper links to the item's own link: that link once.
    let item = "---\ntitle: Only one link\ndate: 2026-11-29T10:30:00-05:00\nregion: national\ntopic: politics\nlink: /2026/11/29/one\n---\nText.\n\n**Go deeper:** Read [the story](/2026/11/29/one).\n";
    let n = Newsroom::fixture("basic").write("content/national/one.md", item);
    let (html, text) = built(&n);
    let url = "https://news.example.com/2026/11/29/one";
    let story = between(&text, "Only one link", "* * *");
    assert_eq!(story.matches(url).count(), 1, "{story}");
    assert!(!story.contains("Full story") && story.matches("Go deeper").count() == 1);
    let story = between(&html, ">Only one link<", "</td>");
    assert!(!story.contains("class=\"go-deeper\""), "{story}");
    n.run(&["check", "--at", AT])
        .success()
        .stderr_has("content/national/one.md:10:1: warning: the body's `Go deeper:` links to the item's own `link:` (line 6)");
}

#[test]
fn lead_placement_is_validated() {
    Newsroom::fixture("basic")
        .edit(
            "config.yaml",
            "    group_by: [region, topic]\n",
            "    group_by: [region, topic]\n    lead: on_top\n",
        )
        .run(&["check", "--at", AT])
        .code(1)
        .stderr_has("error: unknown lead placement `on_top`: expected top or in_section");
}

const TABLES: &str = "---\ntitle: Markets at the close\ndate: 2026-11-29T10:30:00-05:00\nregion: national\ntopic: politics\npriority: 9\n---\n**By the numbers:**\n\n| Gauge | Friday close | Week | Year to date |\n|---|---:|---|:---:|\n| Large-cap index | 6,412.8 | +1.4% | +11.2% |\n| 10-year yield | 4.06% | \u{2212}0.09 pt | \u{2014} |\n\nToo wide for columns:\n\n| Region | Outlook for the coming quarter | Risks named by analysts |\n|---|---|---|\n| Europe | Slow growth as energy prices stay high through the winter | Energy, rates |\n| Asia | Exports recover | Chips |\n";

#[test]
fn tables_render_for_email_and_for_text_snapshot() {
    let n = Newsroom::fixture("basic").write("content/national/tables.md", TABLES);
    let (html, text) = built(&n);
    let tables: Vec<&str> = html
        .split("<div class=\"table-wrap\"")
        .skip(1)
        .map(|t| &t[..t.find("</div>").unwrap() + "</div>".len()])
        .collect();
    assert_eq!(tables.len(), 2);
    insta::assert_snapshot!("tables_html", tables.join("\n\n"));
    insta::assert_snapshot!("tables_txt", between(&text, "By the numbers:", "Chips"));
    // The layout rule `td { padding: 0 }` never reaches a data cell; figures
    // never wrap; columns keep their alignment.
    for cell in tables[0].split("<td").skip(1) {
        let style = between(cell, "style=\"", "\">");
        assert!(!style.contains("padding: 0;"), "{style}");
        assert!(style.contains("padding: 7px"), "{style}");
    }
    let figure = between(tables[0], "<td class=\"num\"", ">6,412.8");
    assert!(
        figure.contains("white-space: nowrap") && figure.ends_with("text-align: right\">6,412.8"),
        "{figure}"
    );
    assert!(
        tables[0].contains("text-align: center\">+11.2%"),
        "{}",
        tables[0]
    );
    for l in text.lines() {
        assert!(l.chars().count() <= 78, "{l:?}");
    }
}

/// The built-in templates over the basic fixture's `am` edition for the
/// sample subscriber changed by `reader`, the context changed by `edit`:
/// the parts as (html, text), CSS not inlined.
fn render_builtin(
    reader: impl Fn(&mut briefing::render::SubscriberCtx),
    edit: impl Fn(&mut briefing::render::context::TemplateContext),
) -> (String, String) {
    use briefing::pipeline::Pipeline;
    use briefing::render::SubscriberCtx;
    use briefing::render::context::TemplateContext;

    let n = Newsroom::fixture("basic");
    let newsroom = briefing::config::Newsroom::load(&n.path().join("config.yaml")).unwrap();
    let pipeline = Pipeline::open(newsroom, &briefing::content::Scope::All);
    let cfg = pipeline.config();
    let at = briefing::time::parse_when(AT, cfg.site.timezone).unwrap();
    let ed = pipeline.edition(cfg.newsletter("am").unwrap(), at).unwrap();
    let bodies = briefing::render::Renderer::new(pipeline.newsroom())
        .unwrap()
        .bodies(ed.items().map(|p| p.item));
    let mut subscriber = SubscriberCtx::sample(cfg);
    reader(&mut subscriber);
    let mut tc = TemplateContext::new(cfg, &ed, &bodies, &subscriber, (132, 1));
    edit(&mut tc);
    let mut tera = tera::Tera::new();
    briefing::render::templates::register_filters(&mut tera);
    tera.add_raw_templates(briefing::render::templates::BUILTIN.iter().copied())
        .unwrap();
    let ctx = tera::Context::from_serialize(&tc).unwrap();
    (
        tera.render("digest.html", &ctx).unwrap(),
        tera.render("digest.txt", &ctx).unwrap(),
    )
}

fn footers(parts: (String, String)) -> String {
    let (html, text) = parts;
    let html = between(&html, "<td class=\"footer\">", "</td>").to_string();
    let text = text[text.rfind("-----\n").unwrap() + 6..].to_string();
    format!("{html}\n\n{text}")
}

#[test]
fn footer_snapshots() {
    // Without a preferences page and an archive, neither link.
    let plain = footers(render_builtin(|s| s.preferences_url.clear(), |_| {}));
    insta::assert_snapshot!("footer", plain);
    assert_eq!(
        plain.matches("1 Test Street, Testville, ST 00000").count(),
        2,
        "the postal address in both parts"
    );
    assert!(!plain.contains("View in browser") && !plain.contains("Manage preferences"));

    let web_url = "https://news.example.com/newsletters/am/2026-11-30-0600/";
    let prefs = "https://news.example.com/preferences?t=abc";
    let linked = footers(render_builtin(
        |s| s.preferences_url = prefs.into(),
        |tc| tc.edition.web_url = web_url.into(),
    ));
    insta::assert_snapshot!("footer_with_links", linked);
    // A link in the HTML part, a line of its own in the text part.
    assert_eq!(
        linked
            .matches(&format!("href=\"{web_url}\">View in browser</a>"))
            .count(),
        1
    );
    assert!(
        linked.contains(&format!("View in browser:\n{web_url}\n")),
        "{linked}"
    );
    assert_eq!(
        linked
            .matches(&format!("href=\"{prefs}\">Manage preferences</a>"))
            .count(),
        1
    );
    assert!(
        linked.contains(&format!("Manage preferences:\n{prefs}\n")),
        "{linked}"
    );

    let test_copy = footers(render_builtin(
        |s| {
            s.test_copy = true;
            s.preferences_url.clear();
        },
        |_| {},
    ));
    insta::assert_snapshot!("footer_test_copy", test_copy);
    assert!(!test_copy.contains("because this address is subscribed"));
    assert_eq!(test_copy.matches("This is a test copy").count(), 2);
}

#[test]
fn the_built_in_templates_do_not_use_axios_trademarks() {
    for (name, text) in briefing::render::templates::BUILTIN {
        assert!(!text.contains("Smart Brevity"), "{name}");
        assert!(!text.contains("1 big thing"), "{name}");
    }
    let (html, text) = built(&Newsroom::fixture("basic"));
    assert!(
        text.contains("\nReading time: 1 min (132 words)\n"),
        "{text}"
    );
    assert!(html.contains("Reading time: <strong"), "{html}");
    // The newsletter can name the count in its own terms.
    let n = Newsroom::fixture("basic").edit(
        "config.yaml",
        "    group_by: [region, topic]\n",
        "    group_by: [region, topic]\n    count_label: Smart Brevity count\n",
    );
    let (_, text) = built(&n);
    assert!(
        text.contains("\nSmart Brevity count: 1 min (132 words)\n"),
        "{text}"
    );
}

/// Addresses and names at the length limits of real lists: 58, 76 and 96
/// characters (a local part of 46, domains up to 49), and long names.
fn long_list() -> String {
    let mut csv = String::from("email,name\n");
    let local = "first.middle.lastname.department.subdivision";
    for (i, domain) in [
        "example.com",
        "news-subscribers.example.org",
        "mail.regional-office.news-subscribers.example.org",
    ]
    .iter()
    .enumerate()
    {
        let name = format!(
            "\"Dr. Maximiliana Theodora Wilhelmina von Hohenzollern-Sigmaringen-Ansbach {i}\""
        );
        csv.push_str(&format!("{local}.{i}@{domain},{name}\n"));
    }
    csv.push_str("short@example.com,Al\n");
    csv
}

/// The text/plain part of every .eml under `dir`.
fn sent_texts(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in walkdir(dir) {
        if e.extension().is_some_and(|x| x == "eml") {
            let raw = std::fs::read(&e).unwrap();
            let m = mail_parser::MessageParser::default().parse(&raw).unwrap();
            let to = m
                .to()
                .and_then(|a| a.first())
                .and_then(|a| a.address())
                .unwrap_or_default()
                .to_string();
            out.push((to, m.body_text(0).unwrap().replace("\r\n", "\n")));
        }
    }
    out
}

fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn assert_lines_fit(to: &str, text: &str) {
    for l in text.lines() {
        let url_alone = l.starts_with("https://") && !l.contains(' ');
        assert!(
            l.chars().count() <= 78 || url_alone,
            "to {to}: a line of {} characters: {l:?}\n{text}",
            l.chars().count()
        );
    }
}

#[test]
fn every_sent_text_line_fits_78_columns_for_long_addresses_and_names() {
    let mut n = Newsroom::fixture(".");
    for list in ["am", "pm", "markets", "denver", "tampa-bay", "world"] {
        n = n.write(&format!("subscribers/{list}.csv"), &long_list());
    }
    let longest = "first.middle.lastname.department.subdivision.2@mail.regional-office.news-subscribers.example.org";
    n.run(&["send", "--due", "--now", AT]).success();
    let texts = sent_texts(&n.path().join("out/outbox"));
    // am, markets, denver and tampa-bay, four readers each.
    assert_eq!(texts.len(), 16);
    for (to, text) in &texts {
        assert_lines_fit(to, text);
        if to.chars().count() > 78 {
            // Too long for any line: cut at the width, never one long line.
            assert!(
                text.contains(&format!("\n{}\n{}", &to[..78], &to[78..])),
                "{text}"
            );
        } else {
            assert!(
                text.split_whitespace().any(|w| w == to),
                "the address, whole: {text}"
            );
        }
    }
    assert!(texts.iter().any(|(to, _)| to == longest));

    // A test copy says so, at any address length.
    n.run(&["send", "-n", "markets", "--at", AT, "--to", longest])
        .success();
    let copies = sent_texts(&n.path().join("out/outbox/markets/2026-11-30T0730/test"));
    assert_eq!(copies.len(), 1);
    let (to, text) = &copies[0];
    assert_lines_fit(to, text);
    assert!(
        text.contains("This is a test copy of Markets from The Daily Brief, sent to"),
        "{text}"
    );
    assert!(
        !text.contains("because this address is subscribed"),
        "{text}"
    );
}

#[test]
fn text_part_is_wrapped_and_lists_links_as_references() {
    let n = Newsroom::fixture(".");
    n.run(&["build", "--at", AT]).success();
    for ed in [
        "am/2026-11-30T0600",
        "markets/2026-11-30T0730",
        "world/2026-11-27T1200",
    ] {
        let text = n.read(&format!("out/{ed}/email.txt"));
        for l in text.lines() {
            assert!(l.chars().count() <= 78, "{ed}: line over 78: {l:?}");
        }
        assert!(text.contains("[1] https://"), "{ed}: link references");
        assert!(
            text.contains("https://news.example.com/unsubscribe"),
            "{ed}: unsubscribe URL spelled out"
        );
    }
    let am = n.read("out/am/2026-11-30T0600/email.txt");
    assert!(am.contains("NATIONAL\n========"), "region headings");
    assert!(am.contains("Why it matters: "), "lead-ins kept");
}

#[test]
fn lead_ins_are_styled_and_relative_urls_made_absolute() {
    let (html, _) = built(&Newsroom::fixture("basic"));
    assert!(html.contains("class=\"lead-in\""));
    assert!(html.contains("class=\"lead-in-label\""));
    assert!(html.contains("href=\"https://news.example.com/docs/stopgap.pdf\""));
    assert!(html.contains("src=\"https://news.example.com/images/port.jpg\""));
}

#[test]
fn raw_html_passes_only_when_allowed() {
    let item = "---\ntitle: Embed\ndate: 2026-11-29T10:30:00-05:00\nregion: national\ntopic: politics\n---\n<div class=\"embed\">Chart</div>\n";
    let n = Newsroom::fixture("basic").write("content/national/embed.md", item);
    let (html, _) = built(&n);
    assert!(
        html.contains("&lt;div class=&quot;embed&quot;&gt;")
            || html.contains("&lt;div class=\"embed\"&gt;"),
        "escaped by default"
    );
    let n = Newsroom::fixture("basic")
        .write("content/national/embed.md", item)
        .edit(
            "config.yaml",
            "newsletters:\n",
            "markdown:\n  allow_html: true\nnewsletters:\n",
        );
    let (html, _) = built(&n);
    assert!(html.contains("<div class=\"embed\""), "allowed by config");
}

#[test]
fn built_in_templates_serve_a_newsroom_without_templates() {
    let n = Newsroom::fixture("basic");
    assert!(!n.path().join("templates").exists());
    let (html, text) = built(&n);
    assert!(html.contains("Morning Brief"));
    assert!(text.starts_with("Morning Brief"));
    // A newsroom's own template overrides the built-in one, file by file.
    let n =
        Newsroom::fixture("basic").write("templates/digest.txt", "Custom: {{ edition.subject }}\n");
    let (html2, text2) = built(&n);
    assert_eq!(
        text2,
        "Custom: Morning Brief: Senate reaches a late deal on the stopgap bill\n"
    );
    assert_eq!(html2, html);
}

/// The variables `docs/templates.md` documents: the context table's first
/// column (`a.b`, then `.c` meaning `a.c`) and the backticked names of the
/// "A **section**" and "An **item**" paragraphs.
fn documented_variables() -> Vec<String> {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/templates.md")).unwrap();
    let ticked =
        |s: &str| -> Vec<String> { s.split('`').skip(1).step_by(2).map(str::to_owned).collect() };
    let mut out = Vec::new();
    let context = doc.split("## Context").nth(1).unwrap();
    let context = context.split("\n## ").next().unwrap();
    for row in context.lines().filter(|l| l.starts_with("| `")) {
        let first = row.split('|').nth(1).unwrap();
        let mut prefix = String::new();
        for name in ticked(first) {
            if name.contains(' ') {
                continue;
            }
            let full = match name.strip_prefix('.') {
                Some(rest) => format!("{prefix}.{rest}"),
                None => name,
            };
            prefix = full
                .rsplit_once('.')
                .map_or(full.clone(), |(p, _)| p.into());
            out.push(full);
        }
    }
    for (marker, base) in [
        ("A **section**:", "sections.0"),
        ("An **item**:", "sections.0.items.0"),
    ] {
        let para = context
            .split(marker)
            .nth(1)
            .unwrap()
            .split("\n\n")
            .next()
            .unwrap();
        for name in ticked(para) {
            let name = name.split(['{', ' ', '(', '[', '"']).next().unwrap();
            // `group_by` is the config key the paragraph refers to, not a field.
            let is_field = !name.is_empty()
                && name != "group_by"
                && name.chars().all(|c| c.is_ascii_lowercase() || c == '_');
            if !is_field {
                continue;
            }
            out.push(format!("{base}.{name}"));
        }
    }
    out
}

#[test]
fn every_documented_template_variable_is_in_the_context() {
    use briefing::pipeline::Pipeline;
    use briefing::render::SubscriberCtx;
    use briefing::render::context::TemplateContext;

    let n = Newsroom::fixture("basic");
    let newsroom = briefing::config::Newsroom::load(&n.path().join("config.yaml")).unwrap();
    let pipeline = Pipeline::open(newsroom, &briefing::content::Scope::All);
    let cfg = pipeline.config();
    let at = briefing::time::parse_when(AT, cfg.site.timezone).unwrap();
    let nl = cfg.newsletter("am").unwrap();
    let ed = pipeline.edition(nl, at).unwrap();
    let bodies = briefing::render::Renderer::new(pipeline.newsroom())
        .unwrap()
        .bodies(ed.items().map(|p| p.item));
    let mut subscriber = SubscriberCtx::sample(cfg);
    subscriber.fields.insert("city".into(), "Denver".into());
    let tc = TemplateContext::new(cfg, &ed, &bodies, &subscriber, (1, 1));
    let value = serde_json::to_value(&tc).unwrap();

    let documented = documented_variables();
    assert!(documented.len() > 40, "{documented:?}");
    for var in &documented {
        // "other CSV columns" are whatever the list has: `city` here.
        let var = var.replace("other CSV columns", "city");
        let mut v = &value;
        for part in var.split('.') {
            v = match part.parse::<usize>() {
                Ok(i) => &v[i],
                Err(_) => &v[part],
            };
        }
        // A key that is present but null (no Reply-To, no image) is fine;
        // a missing one indexes as null too, so look at the parent map.
        let (parent, key) = var.rsplit_once('.').unwrap_or(("", &var));
        let mut p = &value;
        for part in parent.split('.').filter(|s| !s.is_empty()) {
            p = match part.parse::<usize>() {
                Ok(i) => &p[i],
                Err(_) => &p[part],
            };
        }
        assert!(
            !v.is_null() || p.get(key).is_some(),
            "`{var}` is documented but not in the context: {value:#}"
        );
    }
}
