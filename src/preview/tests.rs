//! The project's incremental rebuilds must end where a full load would:
//! each test changes files, applies the change the watcher would report, and
//! compares with `content::load` over the same files.

use std::fs;
use std::path::{Path, PathBuf};

use super::*;
use crate::content::Scope;

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            fs::copy(e.path(), target).unwrap();
        }
    }
}

/// A copy of the browser tests' fixture newsroom, opened.
fn newsroom() -> (tempfile::TempDir, Project) {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/preview"),
        dir.path(),
    );
    let config = fs::canonicalize(dir.path().join("config.yaml")).unwrap();
    let (p, r) = Project::open(&config, Some("2026-11-30T08:00".into()));
    assert!(r.changed);
    assert_eq!(p.items().len(), 5);
    assert!(p.diagnostics().is_empty(), "{:?}", p.diagnostics());
    (dir, p)
}

fn path(p: &Project, rel: &str) -> PathBuf {
    p.newsroom().unwrap().root.join(rel)
}

fn content(p: &mut Project, rels: &[&str]) -> Rebuild {
    let paths: Vec<PathBuf> = rels.iter().map(|r| path(p, r)).collect();
    let change = watch::classify(&p.layout(), &paths);
    p.apply(&change)
}

/// Items and diagnostics as a full load sees the files now.
fn assert_same_as_full_load(p: &Project) {
    let full = content::load(p.newsroom().unwrap(), &Scope::All);
    let ids = |items: &[Item]| {
        items
            .iter()
            .map(|i| (i.id.clone(), i.title.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(p.items()), ids(&full.items));
    let mut ours: Vec<Diagnostic> = p.diagnostics().0;
    ours.retain(|d| d.path.starts_with("content"));
    assert_eq!(ours, full.diagnostics.0);
    // No rendered body outlives its item, and the editions rendered so far
    // (every newsletter, by the recheck) have theirs.
    let bodies = p.pipeline().unwrap().body_ids();
    assert!(
        bodies
            .iter()
            .all(|id| p.items().iter().any(|i| &i.id == id)),
        "{bodies:?}"
    );
    let cfg = &p.newsroom().unwrap().config;
    for n in &cfg.newsletters {
        if let Some(ed) = p.pipeline().unwrap().edition(n, p.default_at()) {
            if ed.is_sendable() {
                assert!(ed.items().all(|i| bodies.contains(&i.item.id)), "{}", n.id);
            }
        }
    }
}

fn subject(p: &Project, newsletter: &str) -> String {
    let n = p.newsroom().unwrap().config.newsletter(newsletter).unwrap();
    let v = p.edition(n, p.default_at(), &Audience::default()).unwrap();
    let r = v.rendered.expect("rendered");
    r.as_ref().as_ref().expect("renders").subject.clone()
}

fn edit(p: &Project, rel: &str, from: &str, to: &str) {
    let f = path(p, rel);
    let text = fs::read_to_string(&f).unwrap();
    assert!(text.contains(from));
    fs::write(f, text.replace(from, to)).unwrap();
}

#[test]
fn saving_an_item_re_parses_only_that_item() {
    let (_d, mut p) = newsroom();
    let v = p.version;
    assert_eq!(
        subject(&p, "city"),
        "City Desk: New tram line opens to the airport"
    );
    edit(
        &p,
        "content/city/tram-line.md",
        "New tram line opens",
        "Tram line opens",
    );
    let r = content(&mut p, &["content/city/tram-line.md"]);
    assert_eq!((r.what, r.reparsed, r.changed), ("content", 1, true));
    assert_eq!(p.version, v + 1);
    assert_eq!(
        subject(&p, "city"),
        "City Desk: Tram line opens to the airport"
    );
    assert_same_as_full_load(&p);
}

#[test]
fn a_broken_item_is_reported_and_recovers_when_fixed() {
    let (_d, mut p) = newsroom();
    let good = fs::read_to_string(path(&p, "content/city/tram-line.md")).unwrap();
    edit(
        &p,
        "content/city/tram-line.md",
        "region: city",
        "region: [city",
    );
    content(&mut p, &["content/city/tram-line.md"]);
    let ds = p.diagnostics();
    assert_eq!(ds.errors(), 1, "{ds:?}");
    assert!(ds.0[0].headline().starts_with("content/city/tram-line.md:"));
    assert_eq!(p.items().len(), 4);
    // What still renders, renders: the next item leads.
    assert_eq!(
        subject(&p, "city"),
        "City Desk: Council schedules a budget hearing for Thursday"
    );
    assert_same_as_full_load(&p);

    fs::write(path(&p, "content/city/tram-line.md"), good).unwrap();
    content(&mut p, &["content/city/tram-line.md"]);
    assert!(p.diagnostics().is_empty());
    assert_eq!(
        subject(&p, "city"),
        "City Desk: New tram line opens to the airport"
    );
    assert_same_as_full_load(&p);
}

#[test]
fn files_and_folders_that_come_and_go() {
    let (_d, mut p) = newsroom();
    // Deleted.
    fs::remove_file(path(&p, "content/city/bus-fares.md")).unwrap();
    content(&mut p, &["content/city/bus-fares.md"]);
    assert_eq!(p.items().len(), 4);
    assert_same_as_full_load(&p);
    // Written as a temp file, then renamed over the real name.
    let text = fs::read_to_string(path(&p, "content/city/tram-line.md")).unwrap();
    fs::write(
        path(&p, "content/city/.new.md.swp"),
        text.replace("tram", "ferry"),
    )
    .unwrap();
    fs::rename(
        path(&p, "content/city/.new.md.swp"),
        path(&p, "content/city/ferry.md"),
    )
    .unwrap();
    content(
        &mut p,
        &["content/city/.new.md.swp", "content/city/ferry.md"],
    );
    assert!(p.items().iter().any(|i| i.id == "city/ferry"));
    assert_same_as_full_load(&p);
    // A folder renamed: its items change ids.
    fs::rename(path(&p, "content/world"), path(&p, "content/intl")).unwrap();
    content(&mut p, &["content/world", "content/intl"]);
    let ids: Vec<&str> = p.items().iter().map(|i| i.id.as_str()).collect();
    assert!(ids.contains(&"intl/grain-prices"), "{ids:?}");
    assert!(!ids.iter().any(|i| i.starts_with("world/")), "{ids:?}");
    assert_same_as_full_load(&p);
}

#[test]
fn case_colliding_ids_follow_the_full_load_rule() {
    let (_d, mut p) = newsroom();
    let text = fs::read_to_string(path(&p, "content/city/tram-line.md")).unwrap();
    fs::write(path(&p, "content/city/Tram-Line.md"), &text).unwrap();
    content(&mut p, &["content/city/Tram-Line.md"]);
    assert_eq!(p.diagnostics().errors(), 1);
    assert!(
        p.diagnostics().0[0]
            .message
            .starts_with("duplicate item id")
    );
    assert_same_as_full_load(&p);
    // The file that won goes away: the other one becomes the item.
    fs::remove_file(path(&p, "content/city/Tram-Line.md")).unwrap();
    fs::remove_file(path(&p, "content/city/tram-line.md")).unwrap();
    fs::write(path(&p, "content/city/Tram-Line.md"), &text).unwrap();
    content(
        &mut p,
        &["content/city/tram-line.md", "content/city/Tram-Line.md"],
    );
    assert!(p.diagnostics().is_empty(), "{:?}", p.diagnostics());
    assert_same_as_full_load(&p);
}

#[test]
fn noise_and_unchanged_files_do_not_bump_the_version() {
    let (_d, mut p) = newsroom();
    let v = p.version;
    assert!(!content(&mut p, &["content/city/.tram-line.md.swp"]).changed);
    assert!(!content(&mut p, &["content/city/notes.txt"]).changed);
    assert_eq!(p.version, v);
}

#[test]
fn broken_templates_keep_the_last_ones_that_compiled() {
    let (_d, mut p) = newsroom();
    let templates = path(&p, "templates");
    fs::create_dir_all(&templates).unwrap();
    fs::write(templates.join("digest.txt"), "{% if %}\n").unwrap();
    let r = p.apply(&watch::classify(
        &p.layout(),
        &[templates.join("digest.txt")],
    ));
    assert_eq!(r.what, "templates");
    assert!(p.templates_stale());
    let ds = p.diagnostics();
    assert!(
        ds.0.iter()
            .any(|d| d.path.ends_with("templates/digest.txt")),
        "{ds:?}"
    );
    assert_eq!(
        subject(&p, "daily"),
        "Gazette Daily: Harbour summit opens with a deal on shipping lanes"
    );

    fs::write(templates.join("digest.txt"), "{{ edition.subject }}\n").unwrap();
    p.apply(&watch::classify(
        &p.layout(),
        &[templates.join("digest.txt")],
    ));
    assert!(!p.templates_stale());
    assert!(p.diagnostics().is_empty());
    let n = p.newsroom().unwrap().config.newsletter("daily").unwrap();
    let v = p.edition(n, p.default_at(), &Audience::default()).unwrap();
    let text = v.rendered.unwrap().as_ref().as_ref().unwrap().text.clone();
    assert_eq!(
        text,
        "Gazette Daily: Harbour summit opens with a deal on shipping lanes\n"
    );
}

#[test]
fn a_broken_config_keeps_the_last_good_one_until_fixed() {
    let (_d, mut p) = newsroom();
    let config = path(&p, "config.yaml");
    let good = fs::read_to_string(&config).unwrap();
    fs::write(
        &config,
        good.replace("timezone: America/New_York", "timezone: Mars/Olympus"),
    )
    .unwrap();
    p.apply(&watch::classify(&p.layout(), std::slice::from_ref(&config)));
    assert!(p.config_stale());
    let ds = p.diagnostics();
    assert!(ds.0[0].headline().starts_with("config.yaml:"), "{ds:?}");
    assert_eq!(
        subject(&p, "daily"),
        "Gazette Daily: Harbour summit opens with a deal on shipping lanes"
    );

    fs::write(&config, good.replace("City Desk: ", "City: ")).unwrap();
    p.apply(&watch::classify(&p.layout(), &[config]));
    assert!(!p.config_stale());
    assert!(p.diagnostics().is_empty());
    assert_eq!(
        subject(&p, "city"),
        "City: New tram line opens to the airport"
    );
}

#[test]
fn preferences_narrow_the_edition() {
    let (_d, p) = newsroom();
    let n = p.newsroom().unwrap().config.newsletter("daily").unwrap();
    let everyone = p.edition(n, p.default_at(), &Audience::default()).unwrap();
    assert_eq!(everyone.shown().item_count(), 4);
    assert!(everyone.personal.is_none());
    let transit = Audience {
        topic: Some("transit".into()),
        ..Audience::default()
    };
    let v = p.edition(n, p.default_at(), &transit).unwrap();
    assert_eq!(v.shown().item_count(), 1);
    assert_eq!(v.full.item_count(), 4);
    assert_eq!(v.subscriber.topics, vec!["transit".to_string()]);
    let r = v.rendered.unwrap();
    assert_eq!(
        r.as_ref().as_ref().unwrap().subject,
        "Gazette Daily: New tram line opens to the airport"
    );
}

#[test]
fn title_lines_point_at_the_title_key() {
    assert_eq!(title_line("---\ndate: x\ntitle: A\n---\n"), 3);
    assert_eq!(
        title_line("---\ndate: x\n---\ntitle: not front-matter\n"),
        1
    );
}

#[test]
fn pages_escape_what_comes_from_the_newsroom() {
    let (_d, mut p) = newsroom();
    edit(
        &p,
        "content/city/tram-line.md",
        "title: New tram line opens to the airport",
        "title: \"<img src=x onerror=alert(1)> & <b>tram</b>\"",
    );
    fs::write(
        path(&p, "content/city/bad.md"),
        "---\ntitle: x\ndate: 2026-11-29T18:00:00-05:00\nregion: <script>\ntopic: transit\n---\n",
    )
    .unwrap();
    content(
        &mut p,
        &["content/city/tram-line.md", "content/city/bad.md"],
    );
    assert_eq!(p.diagnostics().errors(), 1, "{:?}", p.diagnostics());
    let q = pages::PageQuery {
        at: Some("2026-11-30T08:00".into()),
        ..Default::default()
    };
    let page = pages::edition_page(&p, "city", &q, "vscode://file/{path}:{line}").unwrap();
    assert!(!page.contains("<img src=x"), "unescaped title");
    assert!(!page.contains("<script>"), "unescaped diagnostic");
    assert!(!page.contains("<b>tram"), "unescaped title");
    assert!(page.contains("&lt;img src=x onerror=alert(1)&gt; &amp; &lt;b&gt;tram&lt;/b&gt;"));
    assert!(
        page.contains("content/city/bad.md:4:9: error: unknown region `&lt;script&gt;`"),
        "{page}"
    );
    let index = pages::index(&p, &q);
    assert!(!index.contains("<img src=x"));
    assert!(!index.contains("<script>"));
    // Ids that are not in config are not pages.
    assert!(pages::edition_page(&p, "../config.yaml", &q, "").is_none());
    assert!(pages::email_part(&p, "../config.yaml", &q, pages::Part::Html).is_none());
}

#[test]
fn picker_offers_the_newsletters_subscribers_without_suppressed_ones() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let newsroom = crate::config::Newsroom::load(&root.join("config.yaml")).unwrap();
    let cfg = &newsroom.config;
    let am = cfg.newsletter("am").unwrap();
    let offered = super::choices(cfg, am);
    assert_eq!(offered[0].key, "sample");
    let keys: Vec<&str> = offered.iter().map(|c| c.key.as_str()).collect();
    assert!(
        keys.contains(&"leser@xn--bcher-kva.example.org"),
        "{keys:?}"
    );
    assert!(
        !keys.contains(&"unsubscribed@example.com"),
        "suppressed readers are not offered"
    );
    let with_prefs = offered
        .iter()
        .find(|c| !c.regions.is_empty())
        .expect("a reader with preferences");
    assert!(with_prefs.label.contains(&with_prefs.regions[0]));
    let url = &with_prefs.subscriber.unsubscribe_url;
    assert!(
        url.starts_with("https://news.example.com/unsubscribe?n=am&e="),
        "{url}"
    );
}

#[test]
fn a_deeply_nested_item_is_an_error_not_a_dead_preview() {
    let (_d, mut p) = newsroom();
    // Saved on a thread with a worker's 2 MB stack, as the preview renders.
    let good = fs::read_to_string(path(&p, "content/city/tram-line.md")).unwrap();
    let (head, body) = good.split_at(good.rfind("---\n").unwrap() + 4);
    let deep = format!("{head}{}{body}", "> ".repeat(2_500));
    fs::write(path(&p, "content/city/tram-line.md"), deep).unwrap();
    let done = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            content(&mut p, &["content/city/tram-line.md"]);
            let ds = p.diagnostics();
            assert!(
                ds.iter()
                    .any(|d| d.is_error() && d.message.contains("levels")),
                "{ds:?}"
            );
            subject(&p, "city")
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(
        done,
        "City Desk: Council schedules a budget hearing for Thursday"
    );
}

#[test]
fn renderings_are_cached_boundedly_and_only_for_what_the_page_offers() {
    let (_d, p) = newsroom();
    let n = p
        .newsroom()
        .unwrap()
        .config
        .newsletter("city")
        .unwrap()
        .clone();
    let at = p.default_at();
    for i in 0..200 {
        let made_up = Audience {
            subscriber: format!("y{i}"),
            ..Audience::default()
        };
        assert!(p.edition(&n, at, &made_up).is_none(), "y{i} is nobody");
        let region = Audience {
            region: Some(format!("r{i}")),
            ..Audience::default()
        };
        assert!(p.edition(&n, at, &region).is_none());
    }
    // Real requests, each for another time: the cache stays bounded.
    for h in 0..200 {
        let t = at - chrono::Duration::minutes(h * 7);
        let _ = p.edition(&n, t, &Audience::default());
    }
    assert!(
        p.cached_renderings() <= RENDER_CACHE,
        "{}",
        p.cached_renderings()
    );
    assert!(p.cached_renderings() > 0);
}

#[test]
fn the_picker_reads_a_list_again_only_when_it_changes() {
    let (d, _) = newsroom();
    let list = d.path().join("subscribers/city.csv");
    fs::create_dir_all(list.parent().unwrap()).unwrap();
    fs::write(&list, "email,name\nana@example.org,Ana\n").unwrap();
    let config = d.path().join("config.yaml");
    let text = fs::read_to_string(&config).unwrap();
    let text = text.replacen(
        "  city:\n",
        "  city:\n    subscribers: subscribers/city.csv\n",
        1,
    );
    fs::write(&config, text).unwrap();
    let (p, _) = Project::open(&fs::canonicalize(&config).unwrap(), None);
    let n = p
        .newsroom()
        .unwrap()
        .config
        .newsletter("city")
        .unwrap()
        .clone();
    assert!(n.subscribers.is_some());
    let first = p.choices(&n);
    assert!(
        Arc::ptr_eq(&first, &p.choices(&n)),
        "read again without a change"
    );
    let mut text = fs::read_to_string(&list).unwrap();
    text.push_str("late.addition@example.org,Late Addition\n");
    fs::write(&list, text).unwrap();
    let again = p.choices(&n);
    assert!(!Arc::ptr_eq(&first, &again));
    assert!(again.iter().any(|c| c.key == "late.addition@example.org"));
}

/// The `<li>` of newsletter `id` on the index page.
fn index_row(index: &str, id: &str) -> String {
    let start = index
        .find(&format!("data-newsletter=\"{id}\""))
        .unwrap_or_else(|| panic!("no row for {id}"));
    let end = index[start..].find("</li>").unwrap() + start;
    index[start..end].to_string()
}

#[test]
fn the_index_shows_what_the_ledger_says_of_each_edition() {
    use crate::ledger::{DeliveryUpdate, EditionStub, FrozenEdition, Ledger, Recipient, Rendering};

    let (_d, p) = newsroom();
    let q = pages::PageQuery {
        at: Some("2026-11-30T08:00".into()),
        ..Default::default()
    };
    let ledger_path = p.newsroom().unwrap().config.ledger.clone();
    let index = pages::index(&p, &q);
    for id in ["daily", "city"] {
        assert!(
            index_row(&index, id).contains(r#"data-ledger="not-started""#),
            "{index}"
        );
    }
    assert!(
        Ledger::open_existing(&ledger_path).unwrap().is_none(),
        "the preview never creates the ledger"
    );

    let cfg = &p.newsroom().unwrap().config;
    let at = p.default_at();
    let daily = p
        .edition(cfg.newsletter("daily").unwrap(), at, &Audience::default())
        .unwrap();
    let city = p
        .edition(cfg.newsletter("city").unwrap(), at, &Audience::default())
        .unwrap();
    let mut ledger = Ledger::open(&ledger_path).unwrap();
    let frozen = FrozenEdition {
        id: daily.full.id.clone(),
        newsletter: "daily".into(),
        slot_utc: daily.slot.at,
        zone: "America/New_York".into(),
        renderings: vec![Rendering {
            subject: "S".into(),
            html: "H".into(),
            text: "T".into(),
            item_ids: Vec::new(),
        }],
        web: None,
    };
    let reader = |email: &str| Recipient {
        email: email.into(),
        name: None,
        rendering: crate::ledger::MAIN_RENDERING,
        fields: Default::default(),
    };
    ledger
        .freeze_edition(&frozen, &[reader("a@example.com"), reader("b@example.com")])
        .unwrap();
    ledger
        .record_batch(&[DeliveryUpdate {
            edition_id: frozen.id.clone(),
            email: "a@example.com".into(),
            state: crate::ledger::DeliveryState::Sent,
            attempts: 1,
            reply: None,
        }])
        .unwrap();
    let stub = EditionStub {
        id: city.full.id.clone(),
        newsletter: "city".into(),
        slot_utc: city.slot.at,
        zone: "America/New_York".into(),
    };
    ledger
        .record_missed(&stub, "slot was 3h late when the sender ran")
        .unwrap();

    let index = pages::index(&p, &q);
    let row = index_row(&index, "daily");
    assert!(row.contains(r#"data-ledger="pending""#), "{row}");
    assert!(row.contains("sending: 1 sent, 1 to go"), "{row}");
    let row = index_row(&index, "city");
    assert!(row.contains(r#"data-ledger="missed""#), "{row}");
    assert!(row.contains("slot was 3h late"), "the reason: {row}");

    ledger
        .record_batch(&[DeliveryUpdate {
            edition_id: frozen.id.clone(),
            email: "b@example.com".into(),
            state: crate::ledger::DeliveryState::Sent,
            attempts: 1,
            reply: None,
        }])
        .unwrap();
    ledger.mark_complete(&frozen.id).unwrap();
    let row = index_row(&pages::index(&p, &q), "daily");
    assert!(
        row.contains(r#"data-ledger="sent""#) && row.contains("sent to 2"),
        "{row}"
    );
}

#[test]
fn in_this_edition_lists_the_lead_first_as_the_digest_does() {
    let (_d, mut p) = newsroom();
    let q = pages::PageQuery {
        at: Some("2026-11-30T08:00".into()),
        ..Default::default()
    };
    let cfg = &p.newsroom().unwrap().config;
    let n = cfg.newsletter("daily").unwrap();
    let view = p.edition(n, p.default_at(), &Audience::default()).unwrap();
    let lead = view.full.lead().unwrap().item.title.clone();
    let last_section_title = view.full.sections.last().unwrap().items[0]
        .item
        .title
        .clone();
    drop(view);
    let page = pages::edition_page(&p, "daily", &q, "").unwrap();
    let items = &page[page.find("In this edition").unwrap()..];
    let top = items.find("Top story").expect("a top story heading");
    assert!(
        items[top..].find(&esc_title(&lead)).unwrap() < 200,
        "{items}"
    );
    assert_eq!(items.matches(&esc_title(&lead)).count(), 1, "{items}");
    assert!(items.find(&esc_title(&last_section_title)).unwrap() > top);

    // `lead: in_section`: the digest's own order, with the lead marked.
    edit(
        &p,
        "config.yaml",
        "    group_by: [region, topic]\n",
        "    group_by: [region, topic]\n    lead: in_section\n",
    );
    p.apply(&watch::Change::Config);
    let page = pages::edition_page(&p, "daily", &q, "").unwrap();
    let items = &page[page.find("In this edition").unwrap()..];
    assert!(!items.contains("Top story"), "{items}");
    assert!(items.contains(r#"class="badge badge-lead""#), "{items}");
}

fn esc_title(t: &str) -> String {
    pages::esc(t)
}

#[test]
fn the_index_shows_each_newsletters_cadence_and_its_pitch_on_the_sign_up_page() {
    let (d, _) = newsroom();
    let config = d.path().join("config.yaml");
    let text = fs::read_to_string(&config).unwrap();
    let text = text
        .replacen(
            "  daily:\n",
            "  daily:\n    description: \"News & views in five minutes.\"\n",
            1,
        )
        .replacen("  city:\n", "  city:\n    signup: false\n", 1);
    fs::write(&config, text).unwrap();
    let (p, _) = Project::open(&fs::canonicalize(&config).unwrap(), None);
    let q = pages::PageQuery {
        at: Some("2026-11-30T08:00".into()),
        ..Default::default()
    };
    let index = pages::index(&p, &q);
    let daily = index_row(&index, "daily");
    assert!(daily.contains("· Every morning"), "{daily}");
    assert!(
        daily.contains("News &amp; views in five minutes."),
        "{daily}"
    );
    let city = index_row(&index, "city");
    assert!(city.contains("Not on the sign-up page"), "{city}");
}
