#!/usr/bin/env python3
"""Parses LL-HLS playlists with the Python `m3u8` package (an independent parser) and checks
what a player relies on. Usage: validate_playlists.py FILE... ; exits 1 on the first problem.

Media playlists are recognised by #EXT-X-TARGETDURATION, multivariant ones by
#EXT-X-STREAM-INF; a media playlist with EXT-X-PLAYLIST-TYPE:VOD (`llhls package`) is held to
the VOD rules instead of the live LL-HLS ones."""
import sys

import m3u8


def fail(path, msg):
    print(f"{path}: {msg}", file=sys.stderr)
    sys.exit(1)


def check_vod(path, pl):
    """A VOD playlist: complete (ENDLIST), every segment with its map, and none of the live
    LL-HLS tags (Apple's validator warns about LL tags in a VOD playlist)."""
    td = pl.target_duration
    if not pl.is_endlist:
        fail(path, "VOD playlist without EXT-X-ENDLIST")
    if pl.server_control is not None:
        fail(path, "VOD playlist with EXT-X-SERVER-CONTROL")
    if (pl.part_inf and pl.part_inf.part_target is not None) or any(s.parts for s in pl.segments):
        fail(path, "VOD playlist with parts")
    if pl.preload_hint is not None or pl.rendition_reports:
        fail(path, "VOD playlist with a preload hint or rendition reports")
    segs = [s for s in pl.segments if s.uri is not None]
    if not segs or len(segs) != len(pl.segments):
        fail(path, "VOD playlist without complete segments")
    for s in segs:
        if round(s.duration) > td:
            fail(path, f"EXTINF {s.duration} rounds above TD {td}")
        if s.init_section is None:
            fail(path, f"{s.uri}: no EXT-X-MAP applies")
    if pl.version is None or pl.version < 6:
        fail(path, "EXT-X-VERSION below 6 with EXT-X-MAP")


def check_media(path, text):
    pl = m3u8.loads(text)
    if pl.target_duration is None:
        fail(path, "no EXT-X-TARGETDURATION")
    if pl.playlist_type == "vod":
        check_vod(path, pl)
        return
    td = pl.target_duration
    ended = pl.is_endlist
    sc = pl.server_control
    if sc is None or sc.can_block_reload != "YES":
        fail(path, "no EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES")
    pt = pl.part_inf.part_target if pl.part_inf else None
    if pt is None:
        fail(path, "no EXT-X-PART-INF")
    if sc.part_hold_back is None or sc.part_hold_back < 3 * pt - 1e-9:
        fail(path, f"PART-HOLD-BACK {sc.part_hold_back} < 3 x PART-TARGET {pt}")
    if sc.hold_back is not None and sc.hold_back < 3 * td:
        fail(path, "HOLD-BACK < 3 x TD")
    if sc.can_skip_until is not None and sc.can_skip_until < 6 * td:
        fail(path, "CAN-SKIP-UNTIL < 6 x TD")
    segs = [s for s in pl.segments if s.uri is not None]
    if not segs:
        fail(path, "no complete segment")
    for s in segs:
        if round(s.duration) > td:
            fail(path, f"EXTINF {s.duration} rounds above TD {td}")
        if s.parts:
            total = sum(p.duration for p in s.parts)
            if abs(total - s.duration) > 0.001:
                fail(path, f"{s.uri}: EXTINF {s.duration} != sum of parts {total}")
        if s.program_date_time is None:
            fail(path, f"{s.uri}: no EXT-X-PROGRAM-DATE-TIME")
        if s.init_section is None:
            fail(path, f"{s.uri}: no EXT-X-MAP applies")
    for s in pl.segments:
        for p in s.parts:
            if p.duration > pt + 1e-9:
                fail(path, f"part {p.uri} lasts {p.duration} > PART-TARGET {pt}")
    if not ended:
        if pl.preload_hint is None or pl.preload_hint.hint_type != "PART":
            fail(path, "live playlist without EXT-X-PRELOAD-HINT:TYPE=PART")
    else:
        if pl.preload_hint is not None:
            fail(path, "EXT-X-PRELOAD-HINT after EXT-X-ENDLIST")
    if pl.skip and pl.skip.skipped_segments is not None and pl.version < 9:
        fail(path, f"EXT-X-SKIP with EXT-X-VERSION {pl.version}")
    if pl.version is None or pl.version < 6:
        fail(path, "EXT-X-VERSION below 6 with EXT-X-MAP")
    if "\r" in text or text.startswith("\ufeff"):
        fail(path, "CR or BOM in playlist")


def check_multivariant(path, text):
    pl = m3u8.loads(text)
    if not pl.playlists:
        fail(path, "no variant")
    for v in pl.playlists:
        si = v.stream_info
        if not si.bandwidth or not si.codecs:
            fail(path, "variant without BANDWIDTH or CODECS")
        if si.average_bandwidth is None:
            fail(path, "variant without AVERAGE-BANDWIDTH")
    for m in pl.media:
        if m.type == "AUDIO" and not m.language:
            fail(path, "EXT-X-MEDIA TYPE=AUDIO without LANGUAGE")


def main():
    n = 0
    for path in sys.argv[1:]:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if not text.startswith("#EXTM3U\n"):
            fail(path, "does not start with #EXTM3U")
        if "#EXT-X-STREAM-INF" in text:
            check_multivariant(path, text)
        elif "#EXT-X-TARGETDURATION" in text:
            check_media(path, text)
        else:
            fail(path, "neither a media nor a multivariant playlist")
        n += 1
    print(f"validated {n} playlists")


if __name__ == "__main__":
    main()
