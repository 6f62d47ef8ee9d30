#!/usr/bin/env bash
# Installs everything llhls needs on Debian 12: FFmpeg (libraries and CLI), clang for the
# ffmpeg-next bindings, OpenSSL for WebRTC's DTLS (and its CLI for test certificates), nginx
# for the edge and HTTPS tests (its stream module balances RTMP in the cluster test), Varnish
# for the other edge test, Redis for the cluster test, libsrt's srt-live-transmit (a second SRT
# publisher beside ffmpeg), Chromium and GStreamer's simple-whip-client for the player tests,
# the npm and PyPI packages the tests use, and the sample media. Idempotent; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "setup.sh: run as root or install sudo" >&2; exit 1; }
  SUDO="sudo"
fi

pkgs=(ffmpeg libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev
      libavfilter-dev libavdevice-dev clang libclang-dev pkg-config libssl-dev gcc libc6-dev
      nginx openssl chromium fonts-dejavu-core python3-pip curl ca-certificates systemd
      simple-whip-client gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
      gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-nice
      srt-tools varnish redis-server libnginx-mod-stream)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "setup.sh: Rust is not installed. Install it with rustup (https://rustup.rs), then run this again." >&2
    exit 1
  fi
fi

# npm packages for the player tests (hls.js, Shaka Player, playwright-core; no browser download).
if command -v npm >/dev/null; then
  if [ ! -d player-test/node_modules/playwright-core ] || [ ! -d player-test/node_modules/hls.js ] \
     || [ ! -d player-test/node_modules/shaka-player ]; then
    (cd player-test && npm install --no-audit --no-fund --silent)
  fi
else
  echo "setup.sh: installing nodejs and npm"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  (cd player-test && npm install --no-audit --no-fund --silent)
fi

# The independent playlist parser the tests use.
python3 -c 'import m3u8' 2>/dev/null || python3 -m pip install --quiet m3u8==6.0.0 2>/dev/null \
  || python3 -m pip install --quiet --break-system-packages m3u8==6.0.0

samples/fetch.sh >/dev/null
echo "setup.sh: ready"
