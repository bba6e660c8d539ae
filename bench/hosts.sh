#!/usr/bin/env bash
# One edition sent by one host and by two hosts sharing a PostgreSQL ledger,
# and one host on SQLite against one on PostgreSQL, all to one local Postfix
# smtp-sink, in one run; smtp-source against the same sink with the same
# connections is the yardstick. Each host is limited to 8 connections so that
# two hosts have more to share than one (on a 2-core machine the cores, not
# the hosts, are otherwise the limit). The "hosts" are two processes with
# their own working folders and BRIEFING_HOST_IDs, as two machines would be.
#
#   bench/hosts.sh                      # 100,000 recipients
#   N=20000 CONNECTIONS=4 bench/hosts.sh
#
# Needs Debian's postfix (smtp-sink, smtp-source) and postgresql packages.
set -euo pipefail

N=${N:-100000}
CONNECTIONS=${CONNECTIONS:-8}
PATH=$PATH:/usr/sbin
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
for tool in smtp-sink smtp-source "$PG_BIN/initdb"; do
    command -v "$tool" >/dev/null || [ -x "$tool" ] || {
        echo "error: $tool is missing: install Debian's postfix and postgresql packages" >&2
        exit 1
    }
done

echo "== building briefing (release)"
cargo build --quiet --release --bin briefing
BIN=$TARGET_DIR/release/briefing

WORK=$(mktemp -d "${TMPDIR:-/tmp}/briefing-hosts-bench.XXXXXX")
chmod 755 "$WORK"
SINK_PID=
AS=()
[ "$(id -u)" -eq 0 ] && AS=(runuser -u postgres --)
cleanup() {
    [ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null || true
    [ -d "$WORK/pg" ] && "${AS[@]}" "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

PORT=$(free_port)
SINK=(smtp-sink)
[ "$(id -u)" -eq 0 ] && SINK+=(-u nobody)
"${SINK[@]}" -c "127.0.0.1:$PORT" 5000 >"$WORK/sink.log" 2>&1 &
SINK_PID=$!

echo "== a throwaway PostgreSQL"
PG_PORT=$(free_port)
mkdir -p "$WORK/pg"
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$WORK/pg"
"${AS[@]}" "$PG_BIN/initdb" -D "$WORK/pg/data" -U briefing -A trust -E UTF8 >/dev/null
"${AS[@]}" "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/log" -w \
    -o "-p $PG_PORT -k $WORK/pg -c listen_addresses=127.0.0.1" start >/dev/null
PG=postgres://briefing@127.0.0.1:$PG_PORT

# host NAME LEDGER: a working folder with N subscribers to pm.
host() {
    local dir=$WORK/$1
    mkdir -p "$dir"
    cp -r config.yaml content templates subscribers "$dir/"
    sed -i "s|^  transport: outbox$|  transport: smtp\n  smtp: { url: \"smtp://127.0.0.1:$PORT?tls=none\", connections: $CONNECTIONS, timeout: 30s }|" "$dir/config.yaml"
    sed -i "s|^ledger: .*|ledger: $2|" "$dir/config.yaml"
    awk -v n="$N" 'BEGIN { print "email,name"; for (i = 0; i < n; i++) printf "reader%07d@example.org,Reader %d\n", i, i }' >"$dir/subscribers/pm.csv"
}

now() { date +%s.%N; }
SEND=(send -n pm --at 2026-11-30T17:00 --now 2026-11-30T17:01)
run() { # DIR HOST_ID OUT
    (cd "$1" && BRIEFING_UNSUBSCRIBE_SECRET=bench-secret BRIEFING_HOST_ID=$2 "$BIN" "${SEND[@]}" >"$3" 2>"$3.log")
}
sent() { sed -n 's/.*: sent \([0-9]*\),.*/\1/p' "$1"; }

echo "== smtp-source -s $CONNECTIONS -m $N -l 30000 (the yardstick)"
t0=$(now)
smtp-source -s "$CONNECTIONS" -m "$N" -l 30000 -f bench@news.example.com -t reader@example.org "127.0.0.1:$PORT"
t1=$(now)
source_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')

echo "== one host, SQLite ledger"
host sqlite ".briefing/ledger.sqlite"
t0=$(now); run "$WORK/sqlite" host-a "$WORK/sqlite.out"; t1=$(now)
sqlite_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
sed 's/^/   /' "$WORK/sqlite.out"

echo "== one host, PostgreSQL ledger"
"$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U briefing one
host pg1 "$PG/one"
t0=$(now); run "$WORK/pg1" host-a "$WORK/pg1.out"; t1=$(now)
pg1_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
sed 's/^/   /' "$WORK/pg1.out"

echo "== two hosts, one PostgreSQL ledger"
"$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U briefing two
host pg2a "$PG/two"
host pg2b "$PG/two"
t0=$(now)
run "$WORK/pg2a" host-a "$WORK/pg2a.out" &
a=$!
run "$WORK/pg2b" host-b "$WORK/pg2b.out" &
b=$!
wait $a $b
t1=$(now)
pg2_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
sed 's/^/   host-a: /' "$WORK/pg2a.out"
sed 's/^/   host-b: /' "$WORK/pg2b.out"
total=$(($(sent "$WORK/pg2a.out") + $(sent "$WORK/pg2b.out")))
[ "$total" = "$N" ] || { echo "error: the two hosts sent $total, expected $N" >&2; exit 1; }

echo
echo "== results ($(nproc) cores, $(date -u +%Y-%m-%d), $N messages of about 30 KB, $CONNECTIONS connections a host, load average $(cut -d' ' -f1-3 /proc/loadavg))"
rate() { awk -v n="$N" -v s="$1" 'BEGIN { printf "%6.0f msg/s (%.1f s)", n / s, s }'; }
echo "   smtp-source, $CONNECTIONS connections: $(rate "$source_s")"
echo "   one host, SQLite:              $(rate "$sqlite_s")"
echo "   one host, PostgreSQL:          $(rate "$pg1_s")"
echo "   two hosts, PostgreSQL:         $(rate "$pg2_s"), host-a sent $(sent "$WORK/pg2a.out"), host-b $(sent "$WORK/pg2b.out")"
awk -v s="$sqlite_s" -v p="$pg1_s" -v t="$pg2_s" -v y="$source_s" 'BEGIN {
    printf "   PostgreSQL / SQLite, one host: %.2f\n", s / p
    printf "   two hosts / one host (PostgreSQL): %.2f\n", p / t
    printf "   ratio to smtp-source: one host %.2f (SQLite), %.2f (PostgreSQL); two hosts %.2f\n", y / s, y / p, y / t
}'
