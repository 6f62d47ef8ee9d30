#!/bin/bash
# Server memory with a long DVR window (README "DVR", issue 14): `llhls serve` with
# `--dvr-window-secs W` while ffmpeg publishes a synthetic 640x360 stream (1 Mbit/s, a
# keyframe every 2 s, AAC) over RTMP as fast as it encodes (no -re: many times real time, so a
# window of hours fills in minutes), MEDIA seconds of media; every 15 s: VmRSS, the segments
# the media playlist lists (one plain full-playlist request) and the bytes on disk.
#   benches/dvr-rss.sh [W seconds, default 14400] [MEDIA seconds, default 3600] [binary]
# Ports 18951-18952. Run it once with W=0 (the default live window) for the baseline.
set -e
cd "$(dirname "$0")/.."
win=${1:-14400}
media=${2:-3600}
bin=${3:-target/release/llhls}
work=$(mktemp -d)
trap 'kill $pid $ffpid 2>/dev/null || true; rm -rf $work' EXIT
$bin serve --http 127.0.0.1:18951 --rtmp 127.0.0.1:18952 --whip-udp off --demo false \
  --dvr-window-secs $win --data-dir $work/data 2>$work/log &
pid=$!
sleep 2
ffmpeg -nostdin -loglevel error -f lavfi -i testsrc2=size=640x360:rate=30 \
  -f lavfi -i sine=frequency=440:sample_rate=48000 -t $media \
  -c:v libx264 -preset ultrafast -b:v 1M -g 60 -keyint_min 60 -sc_threshold 0 \
  -c:a aac -b:a 96k -f flv rtmp://127.0.0.1:18952/live/rss &
ffpid=$!
start=$(date +%s)
sample() {
  rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
  listed=$(curl -s http://127.0.0.1:18951/live/rss/media.m3u8 | grep -c '^#EXTINF' || true)
  disk=$(du -sb $work/data 2>/dev/null | cut -f1)
  echo "t=$(($(date +%s) - start))s rss=$((rss / 1024))MB segments_listed=$listed disk_bytes=${disk:-0}"
}
while kill -0 $ffpid 2>/dev/null; do
  sleep 15
  sample
done
sample
