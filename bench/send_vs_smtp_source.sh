#!/usr/bin/env bash
# End-to-end delivery speed: `briefing send` to a local Postfix smtp-sink,
# next to Postfix's own load generator smtp-source against the same sink in
# the same run. The target: briefing delivers at least 0.8x smtp-source's
# messages per second, with the ledger on: a fresh SQLite ledger, every
# outcome committed (fsync) in time to keep the crash bound of at most one
# message in doubt per connection.
#
#   bench/send_vs_smtp_source.sh                   # defaults below
#   RECIPIENTS=5000 CONNECTIONS=8 RUNS=5 bench/send_vs_smtp_source.sh
#   BRIEFING_BIN=/tmp/briefing-old bench/send_vs_smtp_source.sh
#                                  # a binary built elsewhere (before/after)
#
# The edition is the sample newsroom's Evening Brief (`pm`) of 2026-11-30
# 17:00: 28 KB rendered (22.7 KB HTML + 5.3 KB text), about 31 KB per message
# on the wire, against smtp-source's 30,000-byte messages. Every recipient
# gets the whole edition, personalised with their name, address, city and
# unsubscribe link. Needs Debian's postfix package (smtp-sink, smtp-source).
set -euo pipefail

RECIPIENTS=${RECIPIENTS:-20000}
CONNECTIONS=${CONNECTIONS:-16}
SIZE=${SIZE:-30000}
RUNS=${RUNS:-3}
JOBS=${JOBS:-1}
PATH=$PATH:/usr/sbin

cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
for tool in smtp-sink smtp-source; do
    command -v "$tool" >/dev/null || {
        echo "error: $tool is missing: install Debian's postfix package" >&2
        exit 1
    }
done

if [ -n "${BRIEFING_BIN:-}" ]; then
    BIN=$(realpath "$BRIEFING_BIN")
    echo "== using $BIN"
else
    echo "== building briefing (release, -j$JOBS)"
    cargo build --quiet --release -j"$JOBS" --bin briefing
    BIN=$TARGET_DIR/release/briefing
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/briefing-send-bench.XXXXXX")
SINK_PID=
cleanup() {
    if [ -n "$SINK_PID" ]; then
        kill "$SINK_PID" 2>/dev/null || true
        wait "$SINK_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# A free loopback port: bind port 0 and read back what the kernel gave.
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
SINK=(smtp-sink)
[ "$(id -u)" -eq 0 ] && SINK+=(-u nobody)
# No -d: writing every message to disk would make the sink the bottleneck.
"${SINK[@]}" -c "127.0.0.1:$PORT" 5000 >"$WORK/sink.log" 2>&1 &
SINK_PID=$!
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.05
done

echo "== newsroom: the sample newsroom, $RECIPIENTS subscribers to pm, $CONNECTIONS connections"
NEWSROOM=$WORK/newsroom
mkdir -p "$NEWSROOM"
cp -r config.yaml content templates subscribers "$NEWSROOM/"
# Deliver over SMTP to the sink instead of to the outbox.
sed -i "s|^  transport: outbox$|  transport: smtp\n  smtp: { url: \"smtp://127.0.0.1:$PORT?tls=none\", connections: $CONNECTIONS, timeout: 30s }|" \
    "$NEWSROOM/config.yaml"
grep -q "smtp://127.0.0.1:$PORT" "$NEWSROOM/config.yaml" || {
    echo "error: could not switch config.yaml to SMTP" >&2
    exit 1
}
awk -v n="$RECIPIENTS" 'BEGIN {
    split("Ana Bruno Chen Dana Elif Femi Hana Ines Lena Mateo Oskar Priya Tariq Uma Yusuf Zoë", first, " ")
    split("Lima Castillo Sato Okafor Jansen Dubois Moreau Haddad Ito Quintero", last, " ")
    split("Chicago|Denver|Tampa|New York||St. Petersburg", city, "|")
    print "email,name,regions,topics,city"
    for (i = 0; i < n; i++)
        printf "reader%05d@example.org,\"%s %s\",,,%s\n", i, first[i % 16 + 1], last[i % 10 + 1], city[i % 6 + 1]
}' >"$NEWSROOM/subscribers/pm.csv"
cd "$NEWSROOM"
"$BIN" send -n pm --at 2026-11-30T17:00 --now 2026-11-30T17:01 --dry-run | sed 's/^/   /'

# Seconds since the epoch, with nanoseconds.
now() { date +%s.%N; }

# Both tools in turn, RUNS times, so that both see the same machine (other
# load, page cache, CPU frequency) as nearly as possible.
: >"$WORK/times"
for run in $(seq "$RUNS"); do
    echo "== run $run of $RUNS: smtp-source -s $CONNECTIONS -m $RECIPIENTS -l $SIZE -d 127.0.0.1:$PORT"
    t0=$(now)
    smtp-source -s "$CONNECTIONS" -m "$RECIPIENTS" -l "$SIZE" -d \
        -f bench@news.example.com -t reader@example.org "127.0.0.1:$PORT"
    t1=$(now)
    source_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')

    echo "== run $run of $RUNS: briefing send -n pm (fresh ledger, $CONNECTIONS connections)"
    rm -rf .briefing out
    t0=$(now)
    BRIEFING_UNSUBSCRIBE_SECRET=bench-secret "$BIN" send \
        -n pm --at 2026-11-30T17:00 --now 2026-11-30T17:01 >"$WORK/send.out" 2>"$WORK/send.log"
    t1=$(now)
    send_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
    sed 's/^/   /' "$WORK/send.out"
    sent=$(sed -n 's/.*: sent \([0-9]*\),.*/\1/p' "$WORK/send.out")
    if [ "${sent:-0}" != "$RECIPIENTS" ]; then
        echo "error: briefing sent ${sent:-nothing}, expected $RECIPIENTS" >&2
        tail -20 "$WORK/send.log" >&2
        exit 1
    fi
    echo "$source_s $send_s" >>"$WORK/times"
done
"$BIN" status --edition pm-2026-11-30T1700 | sed 's/^/   /'

echo
echo "== results ($(nproc) cores, $(date -u +%Y-%m-%d), $RECIPIENTS messages of about 30 KB, $CONNECTIONS connections, load average $(cut -d' ' -f1-3 /proc/loadavg))"
sort -k1,1n "$WORK/times" | awk -v n="$RECIPIENTS" '{ s[NR] = $1 } END { m = s[int((NR + 1) / 2)]; printf "   smtp-source:   %6.0f msg/s (median of %d runs, %.2f s)\n", n / m, NR, m }'
sort -k2,2n "$WORK/times" | awk -v n="$RECIPIENTS" '{ b[NR] = $2 } END { m = b[int((NR + 1) / 2)]; printf "   briefing send: %6.0f msg/s (median of %d runs, %.2f s for the whole command: plan, freeze, deliver, ledger on)\n", n / m, NR, m }'
awk -v n="$RECIPIENTS" '{ printf "   run %d: smtp-source %6.0f msg/s, briefing %6.0f msg/s, ratio %.2f\n", NR, n / $1, n / $2, $1 / $2 }' "$WORK/times"
# Each run's two figures were taken a few seconds apart; their ratio is
# steadier than either figure when the machine is shared.
awk '{ print $1 / $2 }' "$WORK/times" | sort -n | awk '{ r[NR] = $1 } END {
    m = r[int((NR + 1) / 2)]
    printf "   ratio, median of the runs: %.2f (target >= 0.80: %s)\n", m, (m >= 0.8 ? "met" : "NOT met")
}'
