//! `briefing preview` in a real browser: headless Chromium, driven through
//! chromedriver, against the server started over a temporary copy of
//! `tests/fixtures/preview`; `briefing serve`'s reader pages are in
//! `serve`. Every wait polls with a deadline; nothing here asserts on
//! timing.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them).
//! Without them these tests fail: they never skip.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

// The helpers the `it` binary shares; this binary uses only some of them.
#[allow(dead_code)]
#[path = "../it/support/fs.rs"]
mod fs;
#[allow(dead_code)]
#[path = "../it/support/newsroom.rs"]
mod newsroom;
#[allow(dead_code)]
#[path = "../it/support/server.rs"]
mod server;

mod serve;
mod signup;

use serde_json::{Value, json};
use server::{Server, free_port};

const CHROMIUM: &str = "/usr/bin/chromium";
const AT: &str = "2026-11-30T08:00";
/// How long a condition may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(10);

fn fixture() -> PathBuf {
    fs::fixtures().join("preview")
}

/// `briefing preview` over a fresh copy of the fixture newsroom.
struct Preview {
    // Held for its Drop: the server stops with the test.
    _server: Server,
    url: String,
    dir: tempfile::TempDir,
}

impl Preview {
    fn start() -> Preview {
        let dir = tempfile::tempdir().unwrap();
        fs::copy_dir(&fixture(), dir.path());
        let server = Server::start(dir.path(), &["preview", "--at", AT], &[]);
        let url = server.url.clone();
        Preview {
            _server: server,
            url,
            dir,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

/// chromedriver on a free port with headless Chromium behind it.
struct Driver {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(cmd: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(cmd))
            .find(|p| p.is_file())
    })
}

/// Runs `test` with a browser session; the session is closed even when the
/// test fails, then the failure is passed on.
async fn with_browser<F, Fut>(test: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let chromedriver = which("chromedriver").unwrap_or_else(|| {
        panic!("chromedriver is not installed: the preview's browser tests need it (apt-get install -y chromium chromium-driver)")
    });
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is not installed: the preview's browser tests need it (apt-get install -y chromium chromium-driver)"
    );
    let port = free_port();
    let profile = tempfile::tempdir().unwrap();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start chromedriver");
    let driver = Driver {
        child,
        port,
        _profile: profile,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", driver.port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not listen within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--no-first-run", "--window-size=1400,900",
                format!("--user-data-dir={}", driver._profile.path().display()),
            ],
        }),
    );
    let client = ClientBuilder::rustls()
        .expect("rustls")
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("cannot start a Chromium session through chromedriver");
    let outcome = tokio::spawn(test(client.clone())).await;
    let _ = client.close().await;
    drop(driver);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Polls `check` until it returns Some, failing after [`DEADLINE`].
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn text_of(c: &Client, css: &str) -> Option<String> {
    c.find(Locator::Css(css)).await.ok()?.text().await.ok()
}

/// The reader page's `data-state` (which page of `serve` it is).
async fn state(c: &Client) -> Option<String> {
    c.find(Locator::Css("main"))
        .await
        .ok()?
        .attr("data-state")
        .await
        .ok()?
}

async fn wait_for_state(c: &Client, want: &str) {
    eventually(&format!("the {want} page"), || async {
        (state(c).await.as_deref() == Some(want)).then_some(())
    })
    .await;
}

/// Clicks the element `css` finds.
async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .unwrap();
}

/// The text of the document in the iframe `frame` (desktop or phone).
async fn frame_text(c: &Client, frame: &str) -> Option<String> {
    let v = c
        .execute(
            "const fs = document.querySelectorAll(`iframe[data-frame='${arguments[0]}']`);\
             const f = fs[fs.length - 1];\
             return f && f.contentDocument && f.contentDocument.body ? f.contentDocument.body.innerText : null;",
            vec![json!(frame)],
        )
        .await
        .ok()?;
    v.as_str().map(String::from)
}

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.expect("script failed")
}

fn set_title(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains(from), "{} has no `{from}`", file.display());
    std::fs::write(file, text.replace(from, to)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_lists_newsletters_and_edition_shows_subject_html_and_text() {
    let preview = Preview::start();
    let url = preview.url.clone();
    with_browser(move |c| async move {
        c.goto(&format!("{url}/")).await.unwrap();
        let daily = text_of(&c, "li[data-newsletter='daily']").await.unwrap();
        let city = text_of(&c, "li[data-newsletter='city']").await.unwrap();
        assert!(daily.contains("Gazette Daily"), "{daily}");
        assert!(daily.contains("4 items"), "{daily}");
        assert!(city.contains("City Desk"), "{city}");
        assert!(city.contains("3 items"), "{city}");
        assert!(
            daily.contains("Next slot: Tue 1 Dec 2026, 06:00 EST"),
            "{daily}"
        );

        c.find(Locator::Css("li[data-newsletter='daily'] a"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let subject = eventually("the edition page's subject", || async {
            text_of(&c, "#subject").await.filter(|s| !s.is_empty())
        })
        .await;
        assert_eq!(
            subject,
            "Gazette Daily: Harbour summit opens with a deal on shipping lanes"
        );
        let preheader = text_of(&c, "#preheader").await.unwrap();
        assert_eq!(
            preheader,
            "Delegates agreed on the first day to reopen two shipping lanes closed since the spring."
        );
        for frame in ["desktop", "phone"] {
            let body = eventually(&format!("the {frame} iframe's digest"), || async {
                frame_text(&c, frame)
                    .await
                    .filter(|t| t.contains("Grain prices ease as harvest estimates rise"))
            })
            .await;
            assert!(
                body.contains("Harbour summit opens with a deal on shipping lanes"),
                "{body}"
            );
        }
        let phone_width = js(
            &c,
            "return document.querySelector(\"iframe[data-frame='phone']\").getBoundingClientRect().width",
        )
        .await;
        assert_eq!(phone_width.as_f64(), Some(375.0));

        // The plain-text part, in its own view.
        c.find(Locator::Css("a[data-view-tab='text']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let text = eventually("the plain-text pane", || async {
            text_of(&c, ".text-part").await.filter(|t| !t.is_empty())
        })
        .await;
        assert!(text.contains("Harbour summit opens with a deal on shipping lanes"), "{text}");
        let font = c
            .find(Locator::Css(".text-part"))
            .await
            .unwrap()
            .css_value("font-family")
            .await
            .unwrap();
        assert!(font.contains("monospace"), "{font}");
        // The headers it would be sent with.
        c.find(Locator::Css("a[data-view-tab='headers']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let headers = eventually("the headers pane", || async {
            text_of(&c, ".headers").await.filter(|t| !t.is_empty())
        })
        .await;
        assert!(
            headers.contains("Gazette Daily <daily@gazette.example.com>"),
            "{headers}"
        );
        assert!(headers.contains("desk@gazette.example.com"), "{headers}");
        assert!(headers.contains("multipart/alternative"), "{headers}");
    })
    .await;
    drop(preview);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_a_title_on_disk_refreshes_the_open_page() {
    let preview = Preview::start();
    let url = preview.url.clone();
    let file = preview.path("content/city/tram-line.md");
    let log = preview.path("preview.log");
    with_browser(move |c| async move {
        c.goto(&format!("{url}/newsletter/city#view=phone"))
            .await
            .unwrap();
        let subject = text_of(&c, "#subject").await.unwrap();
        assert_eq!(subject, "City Desk: New tram line opens to the airport");
        eventually("the phone iframe", || async {
            frame_text(&c, "phone")
                .await
                .filter(|t| t.contains("New tram line opens to the airport"))
        })
        .await;
        eventually("the live connection", || async {
            let state = js(&c, "return document.getElementById('live').dataset.state").await;
            (state == json!("live")).then_some(())
        })
        .await;
        // Marks this document and scrolls: a refresh must keep both.
        js(
            &c,
            "window.__sameDocument = true; window.scrollTo(0, 240); return null",
        )
        .await;
        let before = js(&c, "return window.scrollY").await;
        assert_eq!(before.as_f64(), Some(240.0));

        set_title(
            &file,
            "title: New tram line opens to the airport",
            "title: Airport tram opens a week early",
        );

        eventually("the new title in the subject line", || async {
            text_of(&c, "#subject")
                .await
                .filter(|s| s == "City Desk: Airport tram opens a week early")
        })
        .await;
        let items = text_of(&c, "[data-live='items']").await.unwrap();
        assert!(items.contains("Airport tram opens a week early"), "{items}");
        assert!(items.contains("content/city/tram-line.md:2"), "{items}");
        eventually("the new title in the phone iframe", || async {
            frame_text(&c, "phone")
                .await
                .filter(|t| t.contains("Airport tram opens a week early"))
        })
        .await;
        // Refreshed in place: same document, same scroll, same view.
        assert_eq!(
            js(&c, "return window.__sameDocument === true").await,
            json!(true)
        );
        assert_eq!(js(&c, "return window.scrollY").await.as_f64(), Some(240.0));
        assert_eq!(
            js(&c, "return document.body.dataset.view").await,
            json!("phone")
        );
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(log.contains("rebuilt content"), "{log}");
    })
    .await;
    drop(preview);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_yaml_shows_the_diagnostic_and_fixing_it_restores_the_edition() {
    let preview = Preview::start();
    let url = preview.url.clone();
    let file = preview.path("content/world/grain-prices.md");
    let config = preview.path("config.yaml");
    let good = std::fs::read_to_string(&file).unwrap();
    with_browser(move |c| async move {
        c.goto(&format!("{url}/newsletter/daily")).await.unwrap();
        let items = text_of(&c, "[data-live='items']").await.unwrap();
        assert!(
            items.contains("Grain prices ease as harvest estimates rise"),
            "{items}"
        );
        assert!(
            c.find(Locator::Css(".diag")).await.is_err(),
            "no errors yet"
        );
        eventually("the live connection", || async {
            let state = js(&c, "return document.getElementById('live').dataset.state").await;
            (state == json!("live")).then_some(())
        })
        .await;

        std::fs::write(
            &file,
            good.replace("topic: economy", "topic: [economy\nauthor: Lars Vik"),
        )
        .unwrap();
        // What `briefing check` says about the broken file.
        let check = Command::new(env!("CARGO_BIN_EXE_briefing"))
            .args(["check", "--at", AT, "--config"])
            .arg(&config)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&check.stderr);
        let headline = stderr
            .lines()
            .find(|l| l.starts_with("content/world/grain-prices.md:"))
            .unwrap_or_else(|| panic!("check reported no error in the file: {stderr}"))
            .to_string();

        let shown = eventually("the diagnostic on the page", || async {
            text_of(&c, ".diag").await.filter(|t| !t.is_empty())
        })
        .await;
        assert!(
            shown.starts_with(&headline),
            "the page shows\n{shown}\nbut check prints\n{headline}"
        );
        assert!(
            shown.contains("content/world/grain-prices.md:6:"),
            "{shown}"
        );
        // The rest of the edition still renders, without the broken item.
        let items = text_of(&c, "[data-live='items']").await.unwrap();
        assert!(!items.contains("Grain prices ease"), "{items}");
        assert!(items.contains("Harbour summit opens"), "{items}");

        std::fs::write(&file, &good).unwrap();
        eventually("the error panel to go away", || async {
            c.find(Locator::Css(".diag")).await.is_err().then_some(())
        })
        .await;
        let items = eventually("the item back in the edition", || async {
            text_of(&c, "[data-live='items']")
                .await
                .filter(|t| t.contains("Grain prices ease as harvest estimates rise"))
        })
        .await;
        assert!(items.contains("4 items"), "{items}");
    })
    .await;
    drop(preview);
}
