#!/usr/bin/env bash
# What one edition costs the ledger and the sender's memory when the list
# has many sparsely filled extra columns (issue "Hardening", item 20):
# 20,000 subscribers with 12 extra columns, each filled for about a third of
# them, sent to the outbox. Prints the renderings the plan made, the
# ledger's size and bytes per recipient, and the sender's peak RSS.
#
#   bench/variants.sh                 # the release build
#   BRIEFING_BIN=path/to/briefing bench/variants.sh
#   N=50000 bench/variants.sh
#   NEWSROOM=dir BRIEFING_BIN=… bench/variants.sh   # another newsroom (e.g. an older release's sample)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20000}
BIN=$(realpath "${BRIEFING_BIN:-target/release/briefing}")
[ -x "$BIN" ] || { cargo build --release --quiet; BIN=$(realpath target/release/briefing); }
NEWSROOM=${NEWSROOM:-.}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$NEWSROOM" && cp -r config.yaml content templates subscribers "$work/")
python3 - "$N" "$work/subscribers/am.csv" <<'PY'
import random, sys
n, path = int(sys.argv[1]), sys.argv[2]
random.seed(7)
cols = [f"c{i}" for i in range(12)]
with open(path, "w") as f:
    f.write("email,name," + ",".join(cols) + "\n")
    for i in range(n):
        vals = [f"v{i % 97}" if random.random() < 0.33 else "" for _ in cols]
        f.write(f"reader{i}@example.org,Reader {i}," + ",".join(vals) + "\n")
PY
cd "$work"
/usr/bin/time -v "$BIN" send -n am --at 2026-11-30T08:00 --now 2026-11-30T06:05 \
    > send.out 2> time.out || { cat send.out time.out; exit 1; }
ledger=.briefing/ledger.sqlite
bytes=$(( $(stat -c %s "$ledger") + $(stat -c %s "$ledger-wal" 2>/dev/null || echo 0) ))
rss=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' time.out)
planned=$("$BIN" status --edition am-2026-11-30T0600 2>/dev/null | grep -oE '[0-9]+ renderings?' || true)
echo "subscribers:        $N (12 extra columns, about a third filled)"
echo "renderings:         ${planned:-?}"
echo "ledger:             $((bytes / 1024)) KB, $((bytes / N)) bytes per recipient"
echo "peak RSS (send):    $((rss / 1024)) MB"
head -1 send.out
