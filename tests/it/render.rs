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
    // Layout tables are presentational.
    let tables = html.matches("<table").count();
    assert!(tables >= 3);
    assert_eq!(
        tables,
        html.matches("role=\"presentation\"").count(),
        "every layout table has role=presentation"
    );
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
    assert!(
        text.contains("<script>alert('x')</script> & \"quotes\""),
        "text part keeps the title as written"
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
