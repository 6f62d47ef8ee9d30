#!/bin/bash
# What recording costs (README "Recording", issue 14): CPU of `llhls serve` (release build,
# run `cargo build --release` first) serving the 720p demo loop alone, `--record false` and
# `--record true` alternately, twice each, over 30 s after 10 s of warm-up; ports 18931/18932.
#   benches/record-cost.sh
set -e
cd "$(dirname "$0")/.."
tck=$(getconf CLK_TCK)
for rec in false true false true; do
  d=$(mktemp -d)
  target/release/llhls serve --http 127.0.0.1:18931 --rtmp 127.0.0.1:18932 --whip-udp off \
    --demo true --demo-ladder off --record $rec --data-dir $d 2>$d/log &
  pid=$!
  sleep 10
  a=$(awk '{print $14+$15}' /proc/$pid/stat)
  sleep 30
  b=$(awk '{print $14+$15}' /proc/$pid/stat)
  bytes=$(du -sb $d/recordings 2>/dev/null | cut -f1)
  echo "record=$rec cpu=$(echo "scale=2; 100*($b-$a)/$tck/30" | bc)% recorded_bytes=${bytes:-0}"
  kill $pid; wait $pid 2>/dev/null || true
  rm -rf $d
done
