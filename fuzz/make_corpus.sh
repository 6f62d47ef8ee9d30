#!/usr/bin/env bash
# Rebuilds the seed corpora under fuzz/corpus/ from real encoder output. Needs ffmpeg (with
# libx265, libsvtav1, libopus) and python3, and samples/media/*.mp4 (scripts/setup.sh fetches
# them). Deterministic enough to review as a diff; keep the total small (< 1 MB).
set -euo pipefail
cd "$(dirname "$0")"
media=../samples/media
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ff() { ffmpeg -hide_banner -loglevel error -y "$@"; }

# 1 s of testsrc2 at 64x64 in HEVC and AV1 (for hvcC / av1C), and AAC / Opus audio encodes.
ff -f lavfi -i testsrc2=size=64x64:rate=25 -t 1 -c:v libx265 -x265-params log-level=none \
   -tag:v hvc1 "$tmp/hevc.mp4"
ff -f lavfi -i testsrc2=size=64x64:rate=25 -t 1 -pix_fmt yuv420p10le -c:v libx265 \
   -x265-params log-level=none -tag:v hvc1 "$tmp/hevc10.mp4"
ff -f lavfi -i testsrc2=size=64x64:rate=25 -t 1 -c:v libsvtav1 -svtav1-params loglevel=0 \
   "$tmp/av1.mp4" 2>/dev/null
ff -f lavfi -i testsrc2=size=64x64:rate=30 -t 1 -c:v libx264 -profile:v baseline "$tmp/avc-base.mp4"
ff -f lavfi -i sine=frequency=440:sample_rate=48000 -ac 2 -t 1 -c:a aac "$tmp/aac48.mp4"
ff -f lavfi -i sine=frequency=440:sample_rate=44100 -ac 1 -t 1 -c:a aac "$tmp/aac44.mp4"
ff -f lavfi -i sine=frequency=440:sample_rate=22050 -ac 6 -t 1 -c:a aac "$tmp/aac22-6ch.mp4"
ff -f lavfi -i sine=frequency=440:sample_rate=48000 -ac 2 -t 1 -c:a libopus "$tmp/opus2.ogg"
ff -f lavfi -i sine=frequency=440:sample_rate=48000 -ac 1 -t 1 -c:a libopus -frame_duration 10 \
   "$tmp/opus1.ogg"
ff -f lavfi -i sine=frequency=440:sample_rate=48000 -ac 6 -t 1 -c:a libopus -mapping_family 1 \
   "$tmp/opus6.ogg"

python3 - "$tmp" "$media" <<'PY'
import os, re, struct, sys, glob, subprocess
tmp, media = sys.argv[1], sys.argv[2]
out = "corpus"

def put(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

def box(data, fourcc):
    """Payload of the first box `fourcc` with a sane size (sample entries nest it)."""
    for m in re.finditer(re.escape(fourcc), data):
        i = m.start()
        if i < 4:
            continue
        size = struct.unpack(">I", data[i - 4:i])[0]
        if 8 <= size <= 1 << 16 and i - 4 + size <= len(data):
            return data[i + 4:i - 4 + size]
    return None

def asc_from_esds(esds):
    # esds: version/flags, then ES_Descriptor(3) > DecoderConfigDescriptor(4) > DSI(5).
    i = esds.index(b"\x05", 4 + 2 + 13)
    i += 1
    n = 0
    while True:
        b = esds[i]; i += 1
        n = (n << 7) | (b & 0x7F)
        if not b & 0x80:
            break
    return esds[i:i + n]

def strip_hvcc_sei(rec):
    """x265 puts a 2 kB SEI (its settings) in hvcC: keep only the VPS/SPS/PPS arrays."""
    i, arrays = 23, []
    for _ in range(rec[22]):
        n = struct.unpack(">H", rec[i + 1:i + 3])[0]
        j = i + 3
        for _ in range(n):
            j += 2 + struct.unpack(">H", rec[j:j + 2])[0]
        if rec[i] & 0x3F in (32, 33, 34):
            arrays.append(rec[i:j])
        i = j
    return rec[:22] + bytes([len(arrays)]) + b"".join(arrays)

def annexb(nals):
    return b"".join(b"\x00\x00\x00\x01" + n for n in nals)

def avcc_nals(rec):
    i, sps, pps = 5, [], []
    for mask, lst in ((0x1F, sps), (0xFF, pps)):
        n = rec[i] & mask; i += 1
        for _ in range(n):
            ln = struct.unpack(">H", rec[i:i + 2])[0]; i += 2
            lst.append(rec[i:i + ln]); i += ln
    return sps, pps

def hvcc_nals(rec):
    i, nals = 23, []
    for _ in range(rec[22]):
        n = struct.unpack(">H", rec[i + 1:i + 3])[0]; i += 3
        for _ in range(n):
            ln = struct.unpack(">H", rec[i:i + 2])[0]; i += 2
            nals.append(rec[i:i + ln]); i += ln
    return nals

# H.264: mode byte 0 = avcC record, 1 = Annex-B SPS/PPS.
for path in sorted(glob.glob(os.path.join(media, "*.mp4"))) + [os.path.join(tmp, "avc-base.mp4")]:
    name = os.path.splitext(os.path.basename(path))[0]
    rec = box(open(path, "rb").read(), b"avcC")
    if rec is None:
        continue
    put("codec_h264", f"{name}-avcc", b"\x00" + rec)
    sps, pps = avcc_nals(rec)
    put("codec_h264", f"{name}-annexb", b"\x01" + annexb(sps + pps))

for name in ("hevc", "hevc10"):
    rec = strip_hvcc_sei(box(open(os.path.join(tmp, name + ".mp4"), "rb").read(), b"hvcC"))
    put("codec_hevc", f"{name}-hvcc", b"\x00" + rec)
    put("codec_hevc", f"{name}-annexb", b"\x01" + annexb(hvcc_nals(rec)))

rec = box(open(os.path.join(tmp, "av1.mp4"), "rb").read(), b"av1C")
put("codec_av1", "svtav1-64x64-av1c", rec)

for name in ("aac48", "aac44", "aac22-6ch"):
    esds = box(open(os.path.join(tmp, name + ".mp4"), "rb").read(), b"esds")
    put("codec_aac", f"{name}-asc", asc_from_esds(esds))
for path in sorted(glob.glob(os.path.join(media, "*.mp4"))):
    esds = box(open(path, "rb").read(), b"esds")
    if esds:
        put("codec_aac", os.path.splitext(os.path.basename(path))[0] + "-asc", asc_from_esds(esds))

# Opus: mode byte 0 = OpusHead, 1 = a packet for opus_packet_samples.
for name in ("opus1", "opus2", "opus6"):
    ogg = open(os.path.join(tmp, name + ".ogg"), "rb").read()
    i = ogg.index(b"OpusHead")
    fam = ogg[i + 18]
    ch = ogg[i + 9]
    n = 19 if fam == 0 else 21 + ch
    put("codec_opus", f"{name}-head", b"\x00" + ogg[i:i + n])
    # First audio packet: the page after OpusTags; take its first segment.
    j = ogg.index(b"OggS", ogg.index(b"OpusTags"))
    nseg = ogg[j + 26]
    lace = ogg[j + 27:j + 27 + nseg]
    start = j + 27 + nseg
    ln = 0
    for l in lace:
        ln += l
        if l < 255:
            break
    put("codec_opus", f"{name}-packet", b"\x01" + ogg[start:start + ln])

# Real _HLS_* query strings: hls.js, AVPlayer, a tokenised CDN URL, and 400s.
queries = {
    "hlsjs-part-skip": "_HLS_msn=17950000042&_HLS_part=3&_HLS_skip=YES",
    "hlsjs-part": "_HLS_msn=17950000042&_HLS_part=0",
    "avplayer-msn": "_HLS_msn=17950000042",
    "skip-v2": "_HLS_skip=v2",
    "token-first": "token=eyJhbGciOi&expires=1795000000&_HLS_part=11&_HLS_msn=9",
    "msn-only-1": "_HLS_msn=1",
    "repeated": "_HLS_msn=1&_HLS_msn=2",
    "part-without-msn": "_HLS_part=1",
    "overflow": "_HLS_msn=18446744073709551616",
    "part-overflow": "_HLS_msn=1&_HLS_part=4294967296",
    "empty": "",
}
for k, v in queries.items():
    put("directives", k, v.encode())

# Range headers: hls.js byte-range parts, RFC 8673 open-ended hints, curl, 416s.
ranges = {
    "part": "bytes=0-30211",
    "part-mid": "bytes=30212-61023",
    "rfc8673-open": "bytes=61024-",
    "rfc8673-max": "bytes=61024-9007199254740991",
    "suffix": "bytes=-500",
    "multi": "bytes=0-1,5-6",
    "spaces": " bytes= 10 - 20 ",
    "reversed": "bytes=5-1",
    "huge": "bytes=99999999999999999999-",
    "unit": "items=0-1",
}
for k, v in ranges.items():
    put("range", k, v.encode())
PY
du -sh corpus
