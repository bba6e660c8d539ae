//! The pipeline's costs on a synthetic newsroom (benches/support/synth.rs):
//! `check` over 10,000 items and its stages, parsing one item, and rendering
//! one 50-item edition. Run with `cargo bench --bench pipeline`; see
//! docs/benchmarks.md for the figures and for the 100,000-item `build`
//! measured against `cat` (bench/build_vs_cat.sh).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};

use briefing::config::Newsroom;
use briefing::content::{self, Item, Scope, parse_item, prescan_date};
use briefing::edition;
use briefing::pipeline::Pipeline;
use briefing::render::Renderer;

#[path = "support/synth.rs"]
mod synth;

/// A generated newsroom of `items` items, 50 a day, cached under target/.
fn newsroom(items: usize) -> Newsroom {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("newsroom-{items}"));
    let spec = synth::Spec::new(items, 50);
    if synth::ensure(&spec, &dir).expect("generate the synthetic newsroom") {
        eprintln!("generated {} items in {}", items, dir.display());
    }
    Newsroom::load(&dir.join("config.yaml")).expect("the generated config is valid")
}

/// What `briefing check --at <anchor>` does, without printing. Returns the
/// number of diagnostics so nothing is optimised away.
fn check(config: &Path) -> usize {
    let newsroom = Newsroom::load(config).expect("valid config");
    Pipeline::open(newsroom, &Scope::All)
        .check(synth::anchor())
        .diagnostics
        .0
        .len()
}

fn load_check_10k(c: &mut Criterion) {
    let newsroom = newsroom(10_000);
    let config = newsroom.config_path.clone();
    let all = content::load(&newsroom, &Scope::All);
    assert_eq!(all.items.len(), 10_000, "{:?}", all.diagnostics);
    let renderer = Renderer::new(&newsroom).expect("built-in templates");

    let mut g = c.benchmark_group("load_check_10k");
    // Each run takes 0.1-0.5 s: flat sampling keeps ten samples within the time.
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("check", |b| b.iter(|| check(black_box(&config))));
    g.bench_function("content_load_all", |b| {
        b.iter(|| content::load(black_box(&newsroom), &Scope::All).items.len())
    });
    g.bench_function("bodies_all", |b| {
        b.iter(|| renderer.bodies(black_box(&all.items)).len())
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("newsroom_load", |b| {
        b.iter(|| Newsroom::load(black_box(&config)).map(|n| n.config.newsletters.len()))
    });
    g.finish();
}

fn parse_one(c: &mut Criterion) {
    let newsroom = newsroom(10_000);
    let cfg = &newsroom.config;
    let ctx = content::parse_ctx(cfg);
    // A hundred different items, so no one item's shape dominates.
    let files: Vec<(PathBuf, String)> = content::load(&newsroom, &Scope::All)
        .items
        .iter()
        .step_by(100)
        .map(|i| {
            let text = std::fs::read_to_string(newsroom.root.join(&i.source))
                .or_else(|_| std::fs::read_to_string(&i.source))
                .expect("readable item");
            (i.source.clone(), text)
        })
        .collect();
    let bytes: usize = files.iter().map(|(_, t)| t.len()).sum();
    assert_eq!(files.len(), 100);

    let mut g = c.benchmark_group("parse_item");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Elements(files.len() as u64));
    g.bench_function("parse_item", |b| {
        b.iter(|| {
            files
                .iter()
                .filter(|(p, t)| parse_item("x/y", p, black_box(t), &ctx).is_ok())
                .count()
        })
    });
    // What `build` pays instead for an item outside every edition window.
    g.bench_function("prescan_date", |b| {
        b.iter(|| {
            files
                .iter()
                .filter_map(|(_, t)| prescan_date(black_box(t), cfg.site.timezone))
                .count()
        })
    });
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("parse_item_bytes", |b| {
        b.iter(|| {
            files
                .iter()
                .filter(|(p, t)| parse_item("x/y", p, black_box(t), &ctx).is_ok())
                .count()
        })
    });
    g.finish();
}

fn render_edition_50(c: &mut Criterion) {
    let newsroom = newsroom(10_000);
    let cfg = &newsroom.config;
    let daily = cfg
        .newsletter("daily")
        .expect("the generated config has `daily`");
    let slot = edition::slot_for(daily, synth::anchor()).expect("a slot");
    let lib = content::load(&newsroom, &Scope::Windows(vec![(slot.start, slot.at)]));
    let items: Vec<Item> = lib.items;
    let ed = edition::select(cfg, daily, slot, &items);
    assert_eq!(ed.item_count(), 50);
    let renderer = Renderer::new(&newsroom).expect("built-in templates");
    let subscriber = briefing::render::SubscriberCtx::sample(cfg);
    let bodies = renderer.bodies(ed.items().map(|p| p.item));

    let mut g = c.benchmark_group("render_edition_50");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    // Bodies and templates: what `build` does per edition.
    g.bench_function("bodies_and_render", |b| {
        b.iter(|| {
            let bodies = renderer.bodies(ed.items().map(|p| p.item));
            renderer
                .render(&newsroom, black_box(&ed), &bodies, &subscriber)
                .expect("renders")
                .html
                .len()
        })
    });
    g.bench_function("render", |b| {
        b.iter(|| {
            renderer
                .render(&newsroom, black_box(&ed), &bodies, &subscriber)
                .expect("renders")
                .html
                .len()
        })
    });
    g.bench_function("bodies", |b| {
        b.iter(|| {
            renderer
                .bodies(black_box(&ed).items().map(|p| p.item))
                .len()
        })
    });
    // Fixed cost of every run: built-in templates parsed, subjects compiled.
    g.bench_function("renderer_new", |b| {
        b.iter(|| Renderer::new(black_box(&newsroom)).is_ok())
    });
    g.finish();
}

criterion_group!(benches, load_check_10k, parse_one, render_edition_50);
criterion_main!(benches);
