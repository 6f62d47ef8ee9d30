#!/bin/bash
# What the DVR window's disk side costs (README "DVR", issue 14); release build (run
# `cargo build --release` first), h2load (nghttp2-client) and nginx; ports 18941-18943.
#   benches/dvr-cost.sh [seconds per h2load round, default 10] [only-disk]
# `only-disk` runs part 1 alone; LLHLS_BIN=path runs another build of llhls (to compare two in
# turn, each beside nginx).
# 1. Requests/s for one DVR segment served from disk: llhls (`--dvr-window-secs 600`, the 720p
#    demo loop, a segment that left the live window) beside nginx serving a copy of the same
#    file, in the same run, h2load over HTTP/1.1 with 64 connections, alternating three times.
# 2. The spill's write cost per stream: CPU of the llhls process serving the demo alone with
#    `--dvr-window-secs 0` and `600` alternately, twice each, over 30 s after 10 s of warm-up.
set -e
cd "$(dirname "$0")/.."
secs=${1:-10}
bin=${LLHLS_BIN:-target/release/llhls}
tck=$(getconf CLK_TCK)
work=$(mktemp -d)
trap 'kill $pid $ngpid 2>/dev/null || true; rm -rf $work' EXIT

serve() { # $1 = DVR window seconds, $2 = data dir
  $bin serve --http 127.0.0.1:18941 --rtmp 127.0.0.1:18942 --whip-udp off --demo true \
    --demo-ladder off --window-segments 6 --dvr-window-secs $1 --data-dir $2 2>$2.log &
  pid=$!
}

# 1. One segment from disk, llhls against nginx.
serve 600 $work/data
until [ -n "$(ls $work/data/dvr/demo.0/media/*.m4s 2>/dev/null | head -1)" ]; do sleep 1; done
sleep 2
seg=$(ls $work/data/dvr/demo.0/media/*.m4s | sort -t/ -k1 | head -1)
name=$(basename $seg)
mkdir -p $work/www/media
cp $seg $work/www/media/$name
user=""; [ "$(id -u)" = 0 ] && user="user root;"
cat >$work/nginx.conf <<EOF
$user worker_processes 2; daemon off; pid $work/nginx.pid; error_log $work/nginx.err warn;
events { worker_connections 4096; }
http { access_log off; sendfile on; tcp_nopush on; open_file_cache max=100;
types { video/mp4 m4s; }
server { listen 127.0.0.1:18943; root $work/www; keepalive_requests 1000000; } }
EOF
nginx -c $work/nginx.conf -p $work &
ngpid=$!
sleep 1
bytes=$(stat -c %s $seg)
cmp <(curl -s http://127.0.0.1:18941/live/demo/media/$name) $seg
cmp <(curl -s http://127.0.0.1:18943/media/$name) $seg
echo "segment media/$name, $bytes bytes, on disk for both"
# req/s, and the requests that did not get a 2xx (must be 0).
rps() {
  h2load --h1 -c 64 -t 1 -D $secs "$1" |
    awk '/^finished in/ {r=$4} /^requests:/ {t=$2} /^status codes:/ {ok=$3} END {print r " (non-2xx: " t-ok ")"}'
}
for round in 1 2 3; do
  n=$(rps http://127.0.0.1:18943/media/$name)
  l=$(rps http://127.0.0.1:18941/live/demo/media/$name)
  echo "round $round: nginx $n req/s, llhls $l req/s"
done
kill $ngpid; wait $ngpid 2>/dev/null || true
kill $pid; wait $pid 2>/dev/null || true
[ "$2" = only-disk ] && exit 0

# 2. The spill's CPU cost.
for dvr in 0 600 0 600; do
  d=$work/cpu-$dvr-$RANDOM
  mkdir -p $d
  serve $dvr $d
  sleep 10
  a=$(awk '{print $14+$15}' /proc/$pid/stat)
  sleep 30
  b=$(awk '{print $14+$15}' /proc/$pid/stat)
  written=$(du -sb $d/dvr 2>/dev/null | cut -f1)
  echo "dvr_window_secs=$dvr cpu=$(echo "scale=2; 100*($b-$a)/$tck/30" | bc)% on_disk_bytes=${written:-0}"
  kill $pid; wait $pid 2>/dev/null || true
done
