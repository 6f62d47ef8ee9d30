#!/bin/bash
# CPU of the ABR ladder (issue 11) beside ffmpeg doing the same work on the same input.
#   benches/ladder-cpu.sh [target/release/llhls] [720|1080|1440]
# A 20 s testsrc2 H.264 30 fps file (keyframe every second, no B-frames) + AAC is published with
# `ffmpeg -re -c copy` over RTMP to `llhls serve --ladder RUNGS`; the server's CPU seconds
# (utime + stime from /proc) minus those of `--ladder off` are the ladder's cost. The reference
# is one ffmpeg process doing the same decode (1 thread), bilinear scale and libx264 encode
# (veryfast, zerolatency, same bitrate, VBV, no scene cuts, threads=1) to -f null, run twice:
# as fast as it can (the whole file in one burst) and paced at the frame rate (`-re`, the input
# arriving in real time as the server's does: each frame wakes the threads from idle).
set -euo pipefail
BIN=${1:-target/release/llhls}
SRC=${2:-720}
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
if [ "$SRC" = 1440 ]; then SIZE=2560x1440; LADDERS="1080p"; elif [ "$SRC" = 1080 ]; then SIZE=1920x1080; LADDERS="720p 720p,480p,360p"; else SIZE=1280x720; LADDERS="240p 360p 480p 540p 480p,360p,240p"; fi
ffmpeg -v error -y -f lavfi -i "testsrc2=size=$SIZE:rate=30:duration=20" -f lavfi -i sine=frequency=440:sample_rate=48000:duration=20 \
  -c:v libx264 -preset veryfast -g 30 -keyint_min 30 -sc_threshold 0 -bf 0 -pix_fmt yuv420p -c:a aac "$DIR/in.mp4"
PORT=$((20000 + RANDOM % 20000))
llhls_cpu() { # LADDER -> CPU seconds
  "$BIN" serve --http 127.0.0.1:$PORT --rtmp 127.0.0.1:$((PORT+1)) --demo false --whip-udp off --layout separate --ladder "$1" >"$DIR/srv.log" 2>&1 &
  local pid=$!
  sleep 1
  ffmpeg -v error -re -i "$DIR/in.mp4" -c copy -f flv rtmp://127.0.0.1:$((PORT+1))/live/b
  sleep 1
  awk '{print ($14+$15)/100}' /proc/$pid/stat
  kill $pid; wait $pid 2>/dev/null || true
  if grep -q withdrawn "$DIR/srv.log"; then echo "  (a rung was withdrawn: $(grep withdrawn "$DIR/srv.log" | head -1))" >&2; fi
}
declare -A KBPS=([1080p]=6000 [720p]=3000 [540p]=2000 [480p]=1100 [360p]=730 [240p]=145)
declare -A H=([1080p]=1080 [720p]=720 [540p]=540 [480p]=480 [360p]=360 [240p]=240)
ffmpeg_cpu() { # LADDER [-re] -> CPU seconds
  local pace=${2:-}
  local rungs=(${1//,/ })
  local n=${#rungs[@]}
  local filter="[0:v]split=$n" maps=() i=0
  for r in "${rungs[@]}"; do filter+="[s$i]"; i=$((i+1)); done
  filter+=";"; i=0
  for r in "${rungs[@]}"; do
    local h=${H[$r]} k=${KBPS[$r]} w
    w=$(python3 -c "import sys; sw,sh=map(int,'$SIZE'.split('x')); print(round(sw*$h/sh/2)*2)")
    filter+="[s$i]scale=$w:$h:flags=bilinear[o$i];"
    maps+=(-map "[o$i]" -c:v libx264 -preset veryfast -tune zerolatency -profile:v high -b:v ${k}k
      -x264-params "scenecut=0:keyint=infinite:vbv-maxrate=$((k * 11 / 10)):vbv-bufsize=$k:threads=1" -f null -)
    i=$((i+1))
  done
  /usr/bin/time -f "%U %S" ffmpeg -v error -threads 1 $pace -i "$DIR/in.mp4" -filter_complex "${filter%;}" "${maps[@]}" 2>&1 | tail -1 | awk '{print $1+$2}'
}
OFF=$(llhls_cpu off)
echo "source ${SIZE}p30, 20 s; llhls --ladder off: $OFF CPU s"
printf '| rungs | llhls ladder CPU s (minus off) | %% of a core | ffmpeg CPU s | %% of a core | llhls / ffmpeg | ffmpeg -re CPU s | %% of a core | llhls / ffmpeg -re |\n|---|---|---|---|---|---|---|---|---|\n'
for l in $LADDERS; do
  A=$(llhls_cpu "$l"); B=$(ffmpeg_cpu "$l"); C=$(ffmpeg_cpu "$l" -re)
  python3 -c "a=$A-$OFF; b=$B; c=$C; print(f'| $l | {a:.2f} | {a/20*100:.1f}% | {b:.2f} | {b/20*100:.1f}% | {a/b:.2f} | {c:.2f} | {c/20*100:.1f}% | {a/c:.2f} |')"
done
