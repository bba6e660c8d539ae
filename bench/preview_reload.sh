#!/usr/bin/env bash
# Measures `briefing preview`'s live reload on the sample newsroom and on a
# generated newsroom of 10,000 items: the rebuild after a save (from the
# server's log) and the time from the save to the open page in headless
# Chromium showing the change. Needs chromium and chromedriver.
#
#   bash bench/preview_reload.sh            # 10 saves each
#   ROUNDS=20 ITEMS=50000 bash bench/preview_reload.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -j1 --bin briefing --example preview_reload
for items in 0 "${ITEMS:-10000}"; do
  target/release/examples/preview_reload --binary target/release/briefing \
    --items "$items" --rounds "${ROUNDS:-10}"
done
