//! Measures `briefing preview`'s live reload: how long the rebuild after a
//! save takes (from the server's log) and how long from the save until the
//! open page in headless Chromium shows the change.
//!
//! Run through `bench/preview_reload.sh`, or:
//!   cargo build --release --examples
//!   target/release/examples/preview_reload --binary target/release/briefing --items 10000
//! `--items 0` measures the sample newsroom in this repository as it is.
//! Needs chromium and chromedriver (Debian: chromium, chromium-driver).

use std::fmt::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fantoccini::{Client, ClientBuilder};
use serde_json::json;

const AT: &str = "2026-11-30T08:00";
const REGIONS: &[&str] = &["national", "world", "denver", "tampa-bay"];
const TOPICS: &[&str] = &[
    "politics", "economy", "markets", "trade", "tech", "climate", "health", "local", "sports",
];

struct Args {
    binary: PathBuf,
    items: usize,
    rounds: usize,
}

fn args() -> Args {
    let mut a = Args {
        binary: PathBuf::from("target/release/briefing"),
        items: 10_000,
        rounds: 10,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--binary" => a.binary = v.into(),
            "--items" => a.items = v.parse().expect("--items N"),
            "--rounds" => a.rounds = v.parse().expect("--rounds N"),
            _ => panic!("unknown argument {k}"),
        }
    }
    a
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// A newsroom with the repository's config.yaml and either its sample items
/// (`items == 0`) or `items` generated ones, dated over the 400 days before
/// the measured slot, plus the item the benchmark edits.
fn newsroom(dir: &Path, items: usize) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(repo.join("config.yaml"), dir.join("config.yaml")).unwrap();
    if items == 0 {
        copy_dir(&repo.join("content"), &dir.join("content"));
    } else {
        let end = 1_796_020_000_i64; // 2026-11-30T05:46:40Z, before the am slot
        for i in 0..items {
            let region = REGIONS[i % REGIONS.len()];
            let topic = TOPICS[(i / REGIONS.len()) % TOPICS.len()];
            let t = end - (i as i64 * 400 * 86_400 / items as i64) - 3_600;
            let date = chrono::DateTime::from_timestamp(t, 0).unwrap().to_rfc3339();
            let folder = dir.join("content").join(region);
            std::fs::create_dir_all(&folder).unwrap();
            let mut body = String::new();
            for p in 0..4 {
                let _ = writeln!(
                    body,
                    "{}Paragraph {p} of generated item {i}: officials said the plan would cost \
                     more than expected, and [the report](https://news.example.com/r/{i}) \
                     lists what changes next quarter for residents and businesses.\n",
                    if p == 1 { "**Why it matters:** " } else { "" }
                );
            }
            std::fs::write(
                folder.join(format!("item-{i:05}.md")),
                format!(
                    "---\ntitle: Generated item {i} about {topic} in {region}\ndate: {date}\n\
                     region: {region}\ntopic: {topic}\npriority: {}\nsummary: A generated item \
                     for the preview benchmark.\nauthor: Bench Writer\n---\n{body}",
                    3 + i % 5
                ),
            )
            .unwrap();
        }
    }
    write_target(dir, "Bench title 0");
}

fn target(dir: &Path) -> PathBuf {
    dir.join("content/national/bench-target.md")
}

fn write_target(dir: &Path, title: &str) {
    std::fs::create_dir_all(target(dir).parent().unwrap()).unwrap();
    std::fs::write(
        target(dir),
        format!(
            "---\ntitle: {title}\ndate: 2026-11-30T05:50:00-05:00\nregion: national\n\
             topic: politics\npriority: 1\nsummary: The item the benchmark edits.\n---\n\
             A short body.\n\n**Why it matters:** It leads the Morning Brief.\n"
        ),
    )
    .unwrap();
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "port {port} never opened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

#[tokio::main]
async fn main() {
    let a = args();
    let dir = tempfile::tempdir().unwrap();
    newsroom(dir.path(), a.items);
    let port = free_port();
    let log_path = dir.path().join("preview.log");
    let server = Kill(
        Command::new(&a.binary)
            .args([
                "preview",
                "--port",
                &port.to_string(),
                "--at",
                AT,
                "--config",
            ])
            .arg(dir.path().join("config.yaml"))
            .env("BRIEFING_LOG", "briefing=info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .expect("cannot start briefing"),
    );
    wait_port(port);

    let driver_port = free_port();
    let profile = tempfile::tempdir().unwrap();
    let _driver = Kill(
        Command::new("chromedriver")
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is needed (apt-get install chromium-driver)"),
    );
    wait_port(driver_port);
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": "/usr/bin/chromium", "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--no-first-run", "--window-size=1400,900",
            format!("--user-data-dir={}", profile.path().display())]}),
    );
    let c: Client = ClientBuilder::rustls()
        .unwrap()
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .expect("cannot start Chromium");
    c.goto(&format!("http://127.0.0.1:{port}/newsletter/am"))
        .await
        .unwrap();

    let mut page_ms = Vec::new();
    for round in 1..=a.rounds {
        let title = format!("Bench title {round}");
        let expected = format!("Morning Brief: {title}");
        // Resolves with the wall-clock time at which the subject changed.
        let c2 = c.clone();
        let waiter = tokio::spawn(async move {
            c2.execute_async(
                "const [want, done] = arguments;\
                 const check = () => { const s = document.getElementById('subject');\
                   if (s && s.textContent === want) { obs.disconnect(); done(Date.now()); } };\
                 const obs = new MutationObserver(check);\
                 obs.observe(document.body, {subtree: true, childList: true, characterData: true});",
                vec![json!(expected)],
            )
            .await
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let saved = now_ms();
        write_target(dir.path(), &title);
        let shown = waiter.await.unwrap().expect("page did not update");
        page_ms.push(shown.as_f64().unwrap() - saved);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = c.close().await;

    let log = std::fs::read_to_string(&log_path).unwrap();
    let loaded = log
        .lines()
        .find(|l| l.contains("loaded"))
        .unwrap_or_default()
        .trim()
        .to_string();
    let rebuild_ms: Vec<f64> = log
        .lines()
        .filter_map(|l| l.split("rebuilt content in ").nth(1))
        .filter_map(|r| r.split(" ms").next()?.parse().ok())
        .collect();
    assert!(!rebuild_ms.is_empty(), "no rebuild in the log:\n{log}");
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let items = if a.items == 0 {
        "sample newsroom".to_string()
    } else {
        format!("{} generated items", a.items)
    };
    println!("{items}: {loaded}");
    println!(
        "  rebuild after a save:      median {:.1} ms, max {:.1} ms ({} saves)",
        median(&mut rebuild_ms.clone()),
        max(&rebuild_ms),
        rebuild_ms.len()
    );
    println!(
        "  save to refreshed page:    median {:.0} ms, max {:.0} ms (includes the {} ms debounce)",
        median(&mut page_ms.clone()),
        max(&page_ms),
        briefing::preview::watch::DEBOUNCE.as_millis()
    );
    drop(server);
}
