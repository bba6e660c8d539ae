#!/usr/bin/env bash
# `briefing build` on a 100,000-item newsroom (about 2 KB an item, 50 a day)
# against merely reading the same files with cat, measured in the same run
# with warm caches. The target: build takes at most 1.5x the time of cat.
# Also times `briefing check` on a 10,000-item newsroom.
#
#   bench/build_vs_cat.sh                      # defaults below
#   ITEMS=20000 RUNS=10 bench/build_vs_cat.sh
#
# Newsrooms are generated once by examples/gen_newsroom.rs and cached in
# target/bench-newsrooms/ (regenerated when the generator changes).
set -euo pipefail

ITEMS=${ITEMS:-100000}
PER_DAY=${PER_DAY:-50}
CHECK_ITEMS=${CHECK_ITEMS:-10000} # 0 skips the check timing
RUNS=${RUNS:-5}
JOBS=${JOBS:-1}

cd "$(dirname "$0")/.."
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
CACHE=$TARGET_DIR/bench-newsrooms

echo "== building briefing and the generator (release, -j$JOBS)"
cargo build --quiet --release -j"$JOBS" --bin briefing --example gen_newsroom
BIN=$TARGET_DIR/release/briefing
GEN=$TARGET_DIR/release/examples/gen_newsroom

OUT=$(mktemp -d "${TMPDIR:-/tmp}/briefing-bench.XXXXXX")
trap 'rm -rf "$OUT"' EXIT

# Prints the median wall time in seconds of RUNS runs of the shell command $1,
# after one warm-up run.
median() {
    local cmd=$1
    if command -v hyperfine >/dev/null; then
        hyperfine --style basic --warmup 1 --runs "$RUNS" --export-json "$OUT/h.json" "$cmd" >&2
        grep -o '"median": *[0-9.e+-]*' "$OUT/h.json" | head -1 | sed 's/.*: *//'
    else
        sh -c "$cmd" >/dev/null 2>&1
        local i t0 t1
        for ((i = 0; i < RUNS; i++)); do
            t0=$(date +%s%N)
            sh -c "$cmd" >/dev/null 2>&1
            t1=$(date +%s%N)
            echo $(((t1 - t0) / 1000))
        done | sort -n | awk '{a[NR] = $1} END {printf "%.6f\n", a[int((NR + 1) / 2)] / 1e6}'
    fi
}

DIR=$CACHE/newsroom-$ITEMS-$PER_DAY
echo "== newsroom: $ITEMS items, $PER_DAY a day, in $DIR"
"$GEN" --items "$ITEMS" --per-day "$PER_DAY" --out "$DIR"
AT=$(sed -n 's/^at=//p' "$DIR/.synth-newsroom")
cd "$DIR"
echo "   $(find content -name '*.md' | wc -l) item files, $(du -sh content | cut -f1) on disk"

echo "== editions at --at $AT (one verbose run, which also warms the caches)"
"$BIN" -v build --at "$AT" --out "$OUT/site" >"$OUT/summary" 2>"$OUT/log"
grep -o 'loaded items.*' "$OUT/log" | sed 's/^/   /'
sed 's/^/   /' "$OUT/summary"
daily=$(awk '$1 == "daily" { for (i = 1; i < NF; i++) if ($(i + 1) == "items") print $i }' "$OUT/summary")
if [ "$daily" != "$PER_DAY" ]; then
    echo "error: the daily edition holds ${daily:-no} items, expected $PER_DAY" >&2
    exit 1
fi

CAT="find content -name '*.md' -print0 | xargs -0 cat > /dev/null"
BUILD="'$BIN' --quiet build --at $AT --out '$OUT/site' > /dev/null"
echo "== timing, median of $RUNS runs each (warm caches)"
cat_s=$(median "$CAT")
build_s=$(median "$BUILD")

check_s=
if [ "$CHECK_ITEMS" -gt 0 ]; then
    CDIR=$CACHE/newsroom-$CHECK_ITEMS-$PER_DAY
    "$GEN" --items "$CHECK_ITEMS" --per-day "$PER_DAY" --out "$CDIR" >/dev/null
    check_s=$(median "'$BIN' --quiet --config '$CDIR/config.yaml' check --at $AT > /dev/null")
fi

echo
echo "== results ($(nproc) cores, $(date -u +%Y-%m-%d))"
printf '   cat   %d files: %.3f s\n' "$ITEMS" "$cat_s"
printf '   build %d files: %.3f s (daily edition: %s items)\n' "$ITEMS" "$build_s" "$daily"
awk -v b="$build_s" -v c="$cat_s" 'BEGIN {
    r = b / c
    printf "   ratio build/cat: %.2f (target <= 1.50: %s)\n", r, (r <= 1.5 ? "met" : "NOT met")
}'
if [ -n "$check_s" ]; then
    printf '   check %d items: %.3f s\n' "$CHECK_ITEMS" "$check_s"
fi
