#!/usr/bin/env python3
"""Parses LL-HLS playlists with the Python `m3u8` package (an independent parser) and checks
them against the rules of RFC 8216bis ("HLS2") and Apple's "HLS Authoring Specification for
Apple Devices" ("Auth") that apply to an LL-HLS live origin and can be checked from the playlist
text (and, when the files are next to the playlist, the init sections and parts).

Usage: validate_playlists.py [--same-snapshot] FILE...
  Prints every problem found ("FILE: [rule] message") and exits 1 if there is any.

Media playlists are recognised by #EXT-X-TARGETDURATION, multivariant ones by
#EXT-X-STREAM-INF; a media playlist with EXT-X-PLAYLIST-TYPE:VOD (`llhls package`) is held to
the VOD rules instead of the live LL-HLS ones.

Cross-playlist rules (identical SERVER-CONTROL, rendition reports for every other rendition,
...) run for every multivariant playlist whose media playlist URIs resolve to files given on
the command line or present on disk next to it. Media checks (init section boxes, CODECS and
RESOLUTION against the sample entries, INDEPENDENT=YES against sync samples) run for every
EXT-X-MAP / EXT-X-PART URI that resolves to a file on disk. `--same-snapshot` says all the
playlists were rendered from one snapshot, so rendition reports must match the other
renditions exactly.

Rule tags: `HLS2 §x` = draft-pantos-hls-rfc8216bis; `Auth x.y` = Apple's authoring
specification; `R<n>` = rule n of LLHLS-RULES.md (the project's digest of both, with the
mediastreamvalidator findings and other servers' mistakes)."""
import datetime
import os
import re
import struct
import sys
import urllib.parse

import m3u8

# Rules that found a real server problem not fixed yet: reported to the lead, listed here so
# that they stay visible, not enforced where they fail. Each entry: (rule tag, a substring of
# the playlist path it is waived for, "" = everywhere; why). Remove an entry once fixed.
OPEN_FINDINGS = [
    # By design today (README "Apple devices"):
    # Auth 6.1 "I-frame playlists (EXT-X-I-FRAME-STREAM-INF) MUST be provided": llhls
    # publishes none (no scrubbing thumbnails or fast trick play on Apple devices).
    ("Auth 6.1", "", "no I-frame playlists"),
    # Auth 9.9 "You MUST provide multiple bit rates of video": without `ladder` llhls packages
    # the one encode it receives (with it, the rungs make several; the demo has one).
    ("Auth 9.9", "", "one variant per stream"),
    # Auth 8.11 "You MUST provide at least six segments in a live (linear) playlist": a young
    # stream's first playlists are offered from three complete segments (commit f98c13d, for
    # viewers who join in the first seconds), so the tests that look at streams a few seconds
    # old (their files are under a "young-stream" directory) see 3-5 segments.
    ("R36 Auth 8.11", "young-stream", "young streams offered from three segments"),
    #
    # Server problems found by this checker, reported to the lead:
    # Auth 7.4 (validator "Video segments MUST start with an IDR frame [#1021]"): after a
    # stall, a publisher with a 4 s GOP resumes mid-GOP and the packager opens a segment on a
    # non-key frame (clearing EXT-X-INDEPENDENT-SEGMENTS, hence Auth 9.11 too). The issue-12
    # work on late backlogs (gap.rs) decides whether to drop up to the next keyframe.
    ("R70 Auth 7.4", "long-gop-", "segment opened on a non-key frame after a stall"),
    ("R35 Auth 9.11", "long-gop-", "segment opened on a non-key frame after a stall"),
    # Same rule, VOD: `llhls package` on real footage with irregular keyframes
    # (tests/package.rs real_footage_with_irregular_keyframes, samples/media/bikes.mp4) keeps
    # TARGETDURATION 2 and cuts segment 4 (after a 2.4 s segment) on a non-key frame, although
    # a VOD packager knows every keyframe and could raise TARGETDURATION instead.
    ("R70 Auth 7.4", "bikes.mp4/", "VOD segment cut on a non-key frame"),
    ("R35 Auth 9.11", "bikes.mp4/", "VOD segment cut on a non-key frame"),
    # HLS2 §4.4.4.9 (parts >= 85% of PART-TARGET unless INDEPENDENT or last) and Auth 7.4: a
    # WHIP publisher that loses, reorders and garbles packets and jumps its timestamps
    # (tests/whip.rs hostile_rtp_is_survived..., stream "bad") gets parts of 0.1 and 0.167 s
    # in the middle of a parent (PART-TARGET 0.2), a 2.4 s segment, and the next segment cut
    # on a non-key frame (so no EXT-X-INDEPENDENT-SEGMENTS either).
    ("R3 HLS2 §4.4.4.9", "young-stream-bad-", "short parts from a lossy WHIP publisher"),
    ("R70 Auth 7.4", "young-stream-bad-", "segment cut on a non-key frame, lossy WHIP"),
    ("R35 Auth 9.11", "young-stream-bad-", "segment cut on a non-key frame, lossy WHIP"),
]


class Problems:
    def __init__(self):
        self.items = []
        self.waived = set()

    def add(self, path, rule, msg):
        for r, where, _ in OPEN_FINDINGS:
            if r == rule and where in path:
                self.waived.add(rule)
                return
        self.items.append(f"{path}: [{rule}] {msg}")


# ---------------------------------------------------------------------------------------------
# A raw line model (the m3u8 package drops tag order, duplicates and unknown attributes).

ATTR_RE = re.compile(r'([A-Z0-9-]+)=("[^"\r\n]*"|[^",\s]*)')


def parse_attrs(value):
    """Attribute list -> (dict, list of syntax problems)."""
    out, errs, pos = {}, [], 0
    while pos < len(value):
        m = ATTR_RE.match(value, pos)
        if not m:
            errs.append(f"bad attribute list at {value[pos:]!r}")
            break
        name, v = m.group(1), m.group(2)
        if name in out:
            errs.append(f"attribute {name} repeated")
        out[name] = v[1:-1] if v.startswith('"') else v
        pos = m.end()
        if pos < len(value):
            if value[pos] != ",":
                errs.append(f"bad attribute list at {value[pos:]!r}")
                break
            pos += 1
    return out, errs


class Tag:
    def __init__(self, line, lineno):
        self.line = line
        self.lineno = lineno
        self.name, _, self.value = line.partition(":")
        self.attrs, self.attr_errs = ({}, [])
        if self.name in ATTR_TAGS:
            self.attrs, self.attr_errs = parse_attrs(self.value)


ATTR_TAGS = {
    "#EXT-X-PART", "#EXT-X-PART-INF", "#EXT-X-SERVER-CONTROL", "#EXT-X-PRELOAD-HINT",
    "#EXT-X-RENDITION-REPORT", "#EXT-X-SKIP", "#EXT-X-MAP", "#EXT-X-STREAM-INF",
    "#EXT-X-MEDIA", "#EXT-X-KEY", "#EXT-X-DATERANGE", "#EXT-X-I-FRAME-STREAM-INF",
}
# Tags that may appear at most once in a playlist [HLS2 §4.4.1-4.4.3, §4.4.5.2].
ONCE_TAGS = {
    "#EXT-X-VERSION", "#EXT-X-TARGETDURATION", "#EXT-X-MEDIA-SEQUENCE",
    "#EXT-X-DISCONTINUITY-SEQUENCE", "#EXT-X-PART-INF", "#EXT-X-SERVER-CONTROL",
    "#EXT-X-SKIP", "#EXT-X-INDEPENDENT-SEGMENTS", "#EXT-X-ENDLIST", "#EXT-X-PLAYLIST-TYPE",
}


class Part:
    def __init__(self, tag):
        a = tag.attrs
        self.tag = tag
        self.uri = a.get("URI")
        self.duration = float(a.get("DURATION", "nan"))
        self.independent = a.get("INDEPENDENT") == "YES"
        self.gap = a.get("GAP") == "YES"
        self.byterange = a.get("BYTERANGE")


class Segment:
    """A parent segment (uri set) or the unfinished parent at the end (uri None)."""

    def __init__(self):
        self.tags = []  # every tag applying to it, in order
        self.parts = []
        self.uri = None
        self.duration = None
        self.gap = False
        self.pdt = None
        self.discontinuity = False
        self.msn = None


class Raw:
    def __init__(self, text):
        self.tags = []
        self.segments = []
        self.trailer = []  # tags after the last URI that are not parts or segment tags
        cur = Segment()
        for n, line in enumerate(text.split("\n"), 1):
            if not line:
                continue
            if line.startswith("#EXT"):
                t = Tag(line, n)
                self.tags.append(t)
                if t.name == "#EXT-X-PART":
                    cur.parts.append(Part(t))
                    cur.tags.append(t)
                elif t.name in SEGMENT_TAGS:
                    cur.tags.append(t)
                    if t.name == "#EXTINF":
                        cur.duration = float(t.value.split(",")[0])
                    elif t.name == "#EXT-X-GAP":
                        cur.gap = True
                    elif t.name == "#EXT-X-DISCONTINUITY":
                        cur.discontinuity = True
                    elif t.name == "#EXT-X-PROGRAM-DATE-TIME":
                        cur.pdt = t.value
                else:
                    self.trailer.append(t)
            elif not line.startswith("#"):
                cur.uri = line
                self.segments.append(cur)
                cur = Segment()
        self.tail = cur if cur.tags else None  # the unfinished parent
        self.first = {}
        self.count = {}
        for t in self.tags:
            self.first.setdefault(t.name, t)
            self.count[t.name] = self.count.get(t.name, 0) + 1
        msn = int(self.value("#EXT-X-MEDIA-SEQUENCE", "0"))
        skip = self.first.get("#EXT-X-SKIP")
        if skip:
            msn += int(skip.attrs.get("SKIPPED-SEGMENTS", "0") or 0)
        for s in self.segments + ([self.tail] if self.tail else []):
            s.msn = msn
            msn += 1

    def value(self, name, default=None):
        t = self.first.get(name)
        return t.value if t else default

    def all_parents(self):
        return self.segments + ([self.tail] if self.tail else [])

    def all_parts(self):
        return [p for s in self.all_parents() for p in s.parts]

    def last_part(self):
        """(msn, index) of the last listed part, or None."""
        for s in reversed(self.all_parents()):
            if s.parts:
                return s.msn, len(s.parts) - 1
        return None


SEGMENT_TAGS = {
    "#EXTINF", "#EXT-X-BYTERANGE", "#EXT-X-DISCONTINUITY", "#EXT-X-KEY", "#EXT-X-MAP",
    "#EXT-X-PROGRAM-DATE-TIME", "#EXT-X-GAP", "#EXT-X-BITRATE", "#EXT-X-DATERANGE",
}

PDT_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$")


def parse_pdt(v):
    return datetime.datetime.fromisoformat(v.replace("Z", "+00:00"))


# ---------------------------------------------------------------------------------------------
# Syntax shared by every playlist.


def check_syntax(path, text, raw, out):
    # HLS2 §4.1: UTF-8 without BOM, no control characters other than LF (we also refuse CR).
    if "\r" in text or text.startswith("\ufeff"):
        out.add(path, "HLS2 §4.1", "CR or BOM in playlist")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        out.add(path, "HLS2 §4.1", "control character in playlist")
    # HLS2 §4.2: attribute lists without whitespace, each AttributeName at most once.
    for t in raw.tags:
        for e in t.attr_errs:
            out.add(path, "HLS2 §4.2", f"line {t.lineno} {t.name}: {e}")
    # HLS2 §4.4.1-4.4.3, R27: header tags at most once.
    for name in ONCE_TAGS:
        if raw.count.get(name, 0) > 1:
            out.add(path, "HLS2 §4.4.3", f"{name} appears {raw.count[name]} times")


# ---------------------------------------------------------------------------------------------
# VOD playlists (`llhls package`).


def check_vod(path, pl, out):
    """A VOD playlist: complete (ENDLIST), every segment with its map, and none of the live
    LL-HLS tags (Apple's validator warns about LL tags in a VOD playlist)."""
    td = pl.target_duration
    if not pl.is_endlist:
        out.add(path, "HLS2 §4.4.3.4", "VOD playlist without EXT-X-ENDLIST")
    if pl.server_control is not None:
        out.add(path, "validator VOD", "VOD playlist with EXT-X-SERVER-CONTROL")
    if (pl.part_inf and pl.part_inf.part_target is not None) or any(s.parts for s in pl.segments):
        out.add(path, "validator VOD", "VOD playlist with parts")
    if pl.preload_hint is not None or pl.rendition_reports:
        out.add(path, "validator VOD", "VOD playlist with a preload hint or rendition reports")
    segs = [s for s in pl.segments if s.uri is not None]
    if not segs or len(segs) != len(pl.segments):
        out.add(path, "HLS2 §4.4.4", "VOD playlist without complete segments")
    for s in segs:
        if not s.duration < td + 0.5:
            out.add(path, "R29 HLS2 §4.4.3.1", f"EXTINF {s.duration} rounds above TD {td}")
        if s.init_section is None:
            out.add(path, "R33 HLS2 §3.1.2", f"{s.uri}: no EXT-X-MAP applies")
    if pl.version is None or pl.version < 6:
        out.add(path, "R27 HLS2 §4.4.1.2", "EXT-X-VERSION below 6 with EXT-X-MAP")


# ---------------------------------------------------------------------------------------------
# Live LL-HLS media playlists. One function per rule group; the rule is in the tag.


def r_server_control(path, pl, raw, out):
    """R8-R12: SERVER-CONTROL and PART-INF [HLS2 §4.4.3.7-8; Auth 14.3]."""
    sc = pl.server_control
    td = pl.target_duration
    if sc is None or sc.can_block_reload != "YES":
        out.add(path, "R8 HLS2 App.B.1", "no EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES")
        return None
    pt = pl.part_inf.part_target if pl.part_inf else None
    if pt is None:
        out.add(path, "R1 HLS2 §4.4.3.7", "no EXT-X-PART-INF:PART-TARGET")
        return None
    if sc.part_hold_back is None:
        out.add(path, "R10 HLS2 §4.4.3.8", "no PART-HOLD-BACK with EXT-X-PART-INF")
    elif sc.part_hold_back < 3 * pt - 1e-9:
        out.add(path, "R10 Auth 14.3",
                f"PART-HOLD-BACK {sc.part_hold_back} < 3 x PART-TARGET {pt}")
    if sc.hold_back is not None and sc.hold_back < 3 * td - 1e-9:
        out.add(path, "R9 HLS2 §4.4.3.8", f"HOLD-BACK {sc.hold_back} < 3 x TD {td}")
    if sc.can_skip_until is not None and sc.can_skip_until < 6 * td - 1e-9:
        out.add(path, "R11 HLS2 §4.4.3.8", f"CAN-SKIP-UNTIL {sc.can_skip_until} < 6 x TD {td}")
    if sc.can_skip_dateranges == "YES" and sc.can_skip_until is None:
        out.add(path, "R12 HLS2 §4.4.3.8", "CAN-SKIP-DATERANGES=YES without CAN-SKIP-UNTIL")
    # Auth 14.4: windows longer than two minutes offer delta updates; Auth 14.5: with
    # DATERANGE tags, skipping them too.
    skipped = pl.skip.skipped_segments if pl.skip and pl.skip.skipped_segments else 0
    window = sum(s.duration for s in raw.segments) + skipped * td
    if window > 120 and sc.can_skip_until is None:
        out.add(path, "Auth 14.4", f"a {window:.0f} s window without CAN-SKIP-UNTIL")
    if sc.can_skip_until is not None and "#EXT-X-DATERANGE" in raw.count \
            and sc.can_skip_dateranges != "YES":
        out.add(path, "Auth 14.5", "delta updates and EXT-X-DATERANGE without CAN-SKIP-DATERANGES")
    return pt


def r_header(path, pl, raw, out):
    """R30, R31, R36: MEDIA-SEQUENCE, DISCONTINUITY-SEQUENCE, PLAYLIST-TYPE."""
    first_seg_line = min((t.lineno for s in raw.all_parents() for t in s.tags), default=1 << 30)
    for name, rule in (("#EXT-X-MEDIA-SEQUENCE", "R30 HLS2 §4.4.3.2"),
                       ("#EXT-X-DISCONTINUITY-SEQUENCE", "R31 Auth 8.17")):
        t = raw.first.get(name)
        if t is None:
            out.add(path, rule, f"live playlist without {name}")
        elif t.lineno > first_seg_line:
            out.add(path, rule, f"{name} after the first media segment")
    if pl.playlist_type is not None:
        out.add(path, "R36 HLS2 §6.2.2",
                f"live playlist with EXT-X-PLAYLIST-TYPE:{pl.playlist_type.upper()}")


def r_segments(path, pl, raw, out, ended):
    """R29, R32, R33, Auth 8.4, Auth 8.11: segment durations, PDT, MAP, window length."""
    td = pl.target_duration
    if not raw.segments:
        out.add(path, "LLHLS-RULES §7.9 hls.js", "no complete segment")
        return
    for s in raw.segments:
        # HLS2 §4.4.3.1: EXTINF rounded to the nearest integer <= TD (2.5 rounds up, unlike
        # Python's round); Auth 7.7: never more than 0.5 s over TD.
        if not s.duration < td + 0.5:
            out.add(path, "R29 HLS2 §4.4.3.1 Auth 7.7",
                    f"{s.uri}: EXTINF {s.duration} rounds above TD {td}")
        if s.parts:
            total = sum(p.duration for p in s.parts)
            if abs(total - s.duration) > 0.001:
                out.add(path, "R5 HLS2 §3.2",
                        f"{s.uri}: EXTINF {s.duration} != sum of its parts {total:.5f}")
    for s in pl.segments:
        if s.uri is not None and s.init_section is None:
            out.add(path, "R33 HLS2 §3.1.2", f"{s.uri}: no EXT-X-MAP applies")
    # Auth 8.4 (LL profile HLS2 App.B.1): PROGRAM-DATE-TIME in every live media playlist;
    # the project puts it on every segment (R32 REC), with milliseconds and a time zone.
    prev = None
    for s in raw.all_parents():
        if s.pdt is None:
            if s.uri is not None:
                out.add(path, "R32 Auth 8.4", f"{s.uri}: no EXT-X-PROGRAM-DATE-TIME")
            prev = None
            continue
        if not PDT_RE.match(s.pdt):
            out.add(path, "R32 HLS2 §4.4.4.6",
                    f"PROGRAM-DATE-TIME {s.pdt} is not YYYY-MM-DDThh:mm:ss.SSS with a zone")
            prev = None
            continue
        t = parse_pdt(s.pdt)
        # HLS2 §4.4.4.6: the date-to-segment mapping MUST NOT be ambiguous: each segment starts
        # after the previous one started, overlapping it by less than a second.
        if prev is not None and not s.discontinuity:
            pt, pdur = prev
            if t <= pt:
                out.add(path, "R32 HLS2 §4.4.4.6",
                        f"MSN {s.msn}: PROGRAM-DATE-TIME {s.pdt} not after the previous one")
            elif pdur is not None:
                overlap = (pt - t).total_seconds() + pdur
                if overlap >= 1.0:
                    out.add(path, "R32 HLS2 §4.4.4.6",
                            f"MSN {s.msn}: PROGRAM-DATE-TIME overlaps the previous segment "
                            f"by {overlap:.3f} s")
        prev = (t, s.duration)
    # Auth 8.5: the date is the content's airtime, so a live playlist never ends in the future
    # (issue 12: after a publisher's backlog bursts in, PDT must not run ahead of the wall
    # clock). Checked against this machine's clock, which is at or after the fetch.
    last = None
    t = 0.0
    for s in raw.all_parents():
        if s.pdt and PDT_RE.match(s.pdt):
            last, t = parse_pdt(s.pdt), 0.0
        t += s.duration if s.uri is not None else sum(p.duration for p in s.parts)
    if not ended and last is not None:
        ahead = (last - datetime.datetime.now(datetime.timezone.utc)).total_seconds() + t
        if ahead > 0.5:
            out.add(path, "Auth 8.5", f"the playlist ends {ahead:.3f} s after the wall clock")
    # Auth 8.11 (mediastreamvalidator "You MUST provide at least six segments in a live
    # playlist"): skipped segments count, the unfinished parent does not.
    skipped = pl.skip.skipped_segments if pl.skip and pl.skip.skipped_segments else 0
    if not ended and len(raw.segments) + skipped < 6:
        out.add(path, "R36 Auth 8.11",
                f"live playlist with {len(raw.segments) + skipped} segments (< 6)")


def r_parts(path, pl, raw, out, pt, ended):
    """R2-R7, R34, R70: part durations, independence, placement, GAP, how far back."""
    if pt is None:
        return
    parents = raw.all_parents()
    parts = raw.all_parts()
    if not parts:
        if not ended:
            # Pitfall 6 (zap-stream-core#96): an LL rendition that never lists a part.
            out.add(path, "R15 HLS2 App.B.1", "live LL playlist without any EXT-X-PART")
        return
    last = parts[-1]
    for s in parents:
        for i, p in enumerate(s.parts):
            if p.uri is None or p.duration != p.duration:
                out.add(path, "R2 HLS2 §4.4.4.9", f"line {p.tag.lineno}: part without URI or DURATION")
                continue
            # HLS2 §4.4.4.9 (AVPlayer: "Partial Segment duration exceeds PART-TARGET", fatal):
            # no rounding allowance.
            if p.duration > pt + 1e-9:
                out.add(path, "R3 HLS2 §4.4.4.9",
                        f"part {p.uri} lasts {p.duration} > PART-TARGET {pt}")
            # HLS2 §4.4.4.9: >= 85% of PART-TARGET except INDEPENDENT=YES or GAP=YES parts, a
            # part followed by a GAP part, and the final part of its parent (the last listed
            # part may be the final part of the unfinished parent: exempt too).
            nxt = s.parts[i + 1] if i + 1 < len(s.parts) else None
            final = nxt is None and (s.uri is not None or p is last)
            if (p.duration < 0.85 * pt - 1e-9 and not p.independent and not p.gap
                    and not final and not (nxt is not None and nxt.gap)):
                out.add(path, "R3 HLS2 §4.4.4.9",
                        f"part {p.uri} lasts {p.duration} < 85% of PART-TARGET {pt}")
        if s.parts:
            # Auth 7.4, R70: every segment starts with an IDR, so its first part is
            # INDEPENDENT=YES (unless the media is absent).
            p0 = s.parts[0]
            if not p0.independent and not p0.gap and not s.gap:
                out.add(path, "R70 Auth 7.4",
                        f"MSN {s.msn}: first part {p0.uri} is not INDEPENDENT=YES")
            # HLS2 §4.4.4.9, R4: DISCONTINUITY, KEY, MAP and PDT of a parent precede its first
            # part.
            first = p0.tag.lineno
            for t in s.tags:
                if t.name in ("#EXT-X-DISCONTINUITY", "#EXT-X-KEY", "#EXT-X-MAP",
                              "#EXT-X-PROGRAM-DATE-TIME") and t.lineno > first:
                    out.add(path, "R4 HLS2 §4.4.4.9",
                            f"MSN {s.msn}: {t.name} after the parent's first EXT-X-PART")
            # HLS2 §4.4.4.7, §6.2.1, R34: a GAP parent's listed parts are all GAP=YES, and a
            # parent whose parts are all GAP=YES is a GAP segment.
            if s.uri is not None:
                if s.gap and not all(p.gap for p in s.parts):
                    out.add(path, "R34 HLS2 §6.2.1",
                            f"{s.uri}: EXT-X-GAP segment with parts that are not GAP=YES")
                if all(p.gap for p in s.parts) and not s.gap:
                    out.add(path, "R34 HLS2 §4.4.4.7",
                            f"{s.uri}: every part GAP=YES but no EXT-X-GAP")
    # HLS2 §6.2.2 and R7/decision E: part tags are removed in playlist order, a whole parent at a
    # time, once the parent ends more than 3 x TD before the end of the playlist; the parts left
    # reach back at least PART-HOLD-BACK (hls.js falls back to whole segments otherwise).
    td = pl.target_duration
    with_parts = [i for i, s in enumerate(parents) if s.parts]
    if with_parts:
        first_i = with_parts[0]
        for s in parents[first_i:]:
            if not s.parts and not s.gap:
                out.add(path, "R7 HLS2 §6.2.2",
                        f"MSN {s.msn} lists no parts after an older parent that does")
        tail_dur = sum(p.duration for p in raw.tail.parts) if raw.tail else 0.0
        end = sum(s.duration for s in raw.segments) + tail_dur
        t = 0.0
        for s in raw.segments:
            t += s.duration
            if s.parts and end - t > 3 * td + 1e-6:
                out.add(path, "R7 HLS2 §6.2.2",
                        f"{s.uri}: parts still listed {end - t:.3f} s (> 3 x TD) before the end")
        listed = sum(p.duration for p in parts)
        phb = pl.server_control.part_hold_back
        if not ended and phb is not None and listed + 1e-6 < phb:
            out.add(path, "R7 HLS2 §6.2.2",
                    f"parts span {listed:.3f} s, less than PART-HOLD-BACK {phb}")


def r_preload_hint(path, pl, raw, out, ended):
    """R14-R15: EXT-X-PRELOAD-HINT [HLS2 §4.4.5.3, App.B.1]."""
    hints = [t for t in raw.tags if t.name == "#EXT-X-PRELOAD-HINT"]
    if ended:
        if hints:
            out.add(path, "R15 HLS2 §4.4.5.3", "EXT-X-PRELOAD-HINT after EXT-X-ENDLIST")
        return
    types = [h.attrs.get("TYPE") for h in hints]
    if "PART" not in types:
        out.add(path, "R15 HLS2 App.B.1", "live playlist without EXT-X-PRELOAD-HINT:TYPE=PART")
    for ty in set(types):
        if ty not in ("PART", "MAP"):
            out.add(path, "R14 HLS2 §4.4.5.3", f"EXT-X-PRELOAD-HINT TYPE={ty}")
        elif types.count(ty) > 1:
            out.add(path, "R15 HLS2 §4.4.5.3", f"{types.count(ty)} hints of TYPE={ty}")
    listed = raw.all_parts()
    for h in hints:
        uri = h.attrs.get("URI")
        if not uri:
            out.add(path, "R14 HLS2 §4.4.5.3", "EXT-X-PRELOAD-HINT without URI")
            continue
        if h.attrs.get("TYPE") != "PART":
            continue
        start = h.attrs.get("BYTERANGE-START")
        same = [p for p in listed if p.uri == uri]
        if start is None and "BYTERANGE-LENGTH" not in h.attrs:
            # The hint names the *next* part: not one already listed.
            if same:
                out.add(path, "R15 HLS2 §4.4.5.3", f"hint {uri} is a part already listed")
        else:
            # A byte-range hint continues right after the listed parts of the same resource.
            end = 0
            for p in same:
                n, _, o = (p.byterange or "").partition("@")
                if n and o:
                    end = max(end, int(o) + int(n))
            if int(start or 0) != end:
                out.add(path, "R14 HLS2 §4.4.5.3",
                        f"hint {uri} BYTERANGE-START={start} but its listed parts end at {end}")


def r_rendition_reports(path, pl, raw, out):
    """R18: EXT-X-RENDITION-REPORT attributes [HLS2 §4.4.5.4]."""
    own = raw.last_part()
    for t in raw.tags:
        if t.name != "#EXT-X-RENDITION-REPORT":
            continue
        uri = t.attrs.get("URI")
        if not uri:
            out.add(path, "R18 HLS2 §4.4.5.4", "rendition report without URI")
            continue
        if urllib.parse.urlsplit(uri).scheme or uri.startswith("//"):
            out.add(path, "R18 HLS2 §4.4.5.4", f"rendition report URI {uri} is not relative")
        for a in ("LAST-MSN", "LAST-PART"):
            v = t.attrs.get(a)
            if v is None:
                # MAY be omitted only when equal to this playlist's own value.
                if own is None:
                    out.add(path, "R18 HLS2 §4.4.5.4", f"rendition report {uri} without {a}")
            elif not re.fullmatch(r"[0-9]+", v):
                out.add(path, "R18 HLS2 §4.4.5.4", f"rendition report {uri} {a}={v!r}")


def r_skip_and_version(path, pl, raw, out, ended):
    """R20-R27: EXT-X-SKIP shape and EXT-X-VERSION [HLS2 §4.4.5.2, §6.2.5.1, §4.4.1.2]."""
    skip = raw.first.get("#EXT-X-SKIP")
    sc = pl.server_control
    if skip is not None:
        n = skip.attrs.get("SKIPPED-SEGMENTS")
        if n is None or not re.fullmatch(r"[0-9]+", n):
            out.add(path, "R20 HLS2 §4.4.5.2", "EXT-X-SKIP without SKIPPED-SEGMENTS")
            n = "0"
        if ended:
            out.add(path, "R44 HLS2 §6.2.5.1", "delta update (EXT-X-SKIP) with EXT-X-ENDLIST")
        if sc is None or sc.can_skip_until is None:
            out.add(path, "R45 HLS2 §6.2.5.1", "EXT-X-SKIP without CAN-SKIP-UNTIL")
        # R24 (hls.js #7554): MEDIA-SEQUENCE and DISCONTINUITY-SEQUENCE before EXT-X-SKIP.
        for name in ("#EXT-X-MEDIA-SEQUENCE", "#EXT-X-DISCONTINUITY-SEQUENCE"):
            t = raw.first.get(name)
            if t is not None and t.lineno > skip.lineno:
                out.add(path, "R24 hls.js", f"{name} after EXT-X-SKIP")
        if raw.segments and skip.lineno > min(t.lineno for t in raw.segments[0].tags):
            out.add(path, "R20 HLS2 §4.4.5.2", "EXT-X-SKIP after the first listed segment")
        # R21 HLS2 §6.2.5.1: only segments ending at least CAN-SKIP-UNTIL before the end of the
        # last parent segment may be skipped, so what is listed spans at least that much.
        if int(n) > 0 and sc is not None and sc.can_skip_until is not None:
            listed = sum(s.duration for s in raw.segments)
            if listed + 1e-6 < sc.can_skip_until:
                out.add(path, "R21 HLS2 §6.2.5.1",
                        f"skipped {n} segments but only {listed:.3f} s remain "
                        f"(< CAN-SKIP-UNTIL {sc.can_skip_until})")
    # R27: the version a playlist needs, and no more (SHOULD NOT exceed).
    need = 1
    if any(s.duration is not None and s.duration != int(s.duration) for s in raw.segments):
        need = max(need, 3)
    if "#EXT-X-BYTERANGE" in raw.count:
        need = max(need, 4)
    if "#EXT-X-MAP" in raw.count:
        need = max(need, 6)
    if "#EXT-X-DEFINE" in raw.count:
        need = max(need, 8)
    if skip is not None:
        need = max(need, 10 if "RECENTLY-REMOVED-DATERANGES" in skip.attrs else 9)
    v = raw.value("#EXT-X-VERSION")
    if v is None:
        if need > 1:
            out.add(path, "R27 HLS2 §4.4.1.2", f"no EXT-X-VERSION (needs {need})")
    elif not re.fullmatch(r"[0-9]+", v) or int(v) < need:
        out.add(path, "R27 HLS2 §4.4.1.2", f"EXT-X-VERSION {v} below {need} for the tags used")
    elif int(v) > need:
        out.add(path, "R27 HLS2 §4.4.1.2", f"EXT-X-VERSION {v} above the {need} the tags need")


def check_media(path, text, raw, out):
    tdv = raw.value("#EXT-X-TARGETDURATION", "")
    if not re.fullmatch(r"[1-9][0-9]*", tdv):
        out.add(path, "R29 HLS2 §4.4.3.1", f"TARGETDURATION {tdv!r} is not an integer >= 1")
        return None
    try:
        pl = m3u8.loads(text)
    except Exception as e:
        out.add(path, "HLS2 §4", f"the m3u8 package cannot parse it: {e}")
        return None
    if pl.target_duration is None:
        out.add(path, "R29 HLS2 §4.4.3.1", "no EXT-X-TARGETDURATION")
        return pl
    if pl.playlist_type == "vod":
        check_vod(path, pl, out)
        return pl
    ended = pl.is_endlist
    pt = r_server_control(path, pl, raw, out)
    r_header(path, pl, raw, out)
    r_segments(path, pl, raw, out, ended)
    r_parts(path, pl, raw, out, pt, ended)
    r_preload_hint(path, pl, raw, out, ended)
    r_rendition_reports(path, pl, raw, out)
    r_skip_and_version(path, pl, raw, out, ended)
    return pl


# ---------------------------------------------------------------------------------------------
# Multivariant playlists.

VIDEO_CODECS = ("avc1", "avc3", "hvc1", "hev1", "dvh1", "dvhe", "av01", "vp09")
AUDIO_CODECS = ("mp4a", "ac-3", "ec-3", "ac-4", "opus", "flac", "alac", "fLaC", "Opus")


APPLE_AUDIO = ("mp4a.40.2", "mp4a.40.5", "mp4a.40.29", "mp4a.40.42", "alac", "fLaC", "ac-3",
               "ec-3")


def codec_list(codecs):
    return [c.strip() for c in (codecs or "").split(",") if c.strip()]


def check_multivariant(path, text, raw, out):
    try:
        pl = m3u8.loads(text)
    except Exception as e:
        out.add(path, "HLS2 §4", f"the m3u8 package cannot parse it: {e}")
        return
    media_tags = [t.name for t in raw.tags if t.name in (
        "#EXT-X-TARGETDURATION", "#EXT-X-PART", "#EXTINF", "#EXT-X-MEDIA-SEQUENCE")]
    if media_tags:
        # HLS2 §4.4: a playlist is either a media or a multivariant playlist.
        out.add(path, "HLS2 §4.4", f"multivariant playlist with media playlist tag {media_tags[0]}")
    if not pl.playlists:
        out.add(path, "HLS2 §4.4.6.2", "no variant")
    groups = {}
    for t in raw.tags:
        if t.name == "#EXT-X-MEDIA":
            groups.setdefault((t.attrs.get("TYPE"), t.attrs.get("GROUP-ID")), []).append(t.attrs)
    has_video = False
    cc_none = []
    for t in raw.tags:
        if t.name != "#EXT-X-STREAM-INF":
            continue
        a = t.attrs
        where = f"line {t.lineno}"
        # R61 Auth 9.1 / 9.14 / HLS2 §4.4.6.2: BANDWIDTH, AVERAGE-BANDWIDTH, CODECS.
        if not a.get("BANDWIDTH", "").isdigit() or int(a["BANDWIDTH"]) == 0:
            out.add(path, "R61 HLS2 §4.4.6.2", f"{where}: variant without BANDWIDTH")
        if "AVERAGE-BANDWIDTH" not in a:
            out.add(path, "R61 Auth 9.14", f"{where}: variant without AVERAGE-BANDWIDTH")
        elif a.get("BANDWIDTH", "").isdigit() and int(a["AVERAGE-BANDWIDTH"]) > int(a["BANDWIDTH"]):
            out.add(path, "R61 HLS2 §4.4.6.2",
                    f"{where}: AVERAGE-BANDWIDTH above the peak BANDWIDTH")
        codecs = codec_list(a.get("CODECS"))
        if not codecs:
            out.add(path, "R61 Auth 9.1", f"{where}: variant without CODECS")
        video = any(c.split(".")[0] in VIDEO_CODECS for c in codecs)
        has_video |= video
        if video:
            # Auth 9.2: RESOLUTION; Auth 9.15: FRAME-RATE (3 decimals, HLS2 §4.4.6.2).
            if not re.fullmatch(r"[0-9]+x[0-9]+", a.get("RESOLUTION", "")):
                out.add(path, "R61 Auth 9.2", f"{where}: video variant without RESOLUTION")
            if not re.fullmatch(r"[0-9]+(\.[0-9]{1,3})?", a.get("FRAME-RATE", "")):
                out.add(path, "R61 Auth 9.15", f"{where}: video variant without FRAME-RATE")
            elif float(a["FRAME-RATE"]) > 60:
                out.add(path, "Auth 1.19", f"{where}: FRAME-RATE {a['FRAME-RATE']} above 60")
        # Auth 2.2, 2.5: the audio formats Apple devices play (AAC-LC, HE-AAC v1/v2, xHE-AAC,
        # Apple Lossless, FLAC, AC-3, E-AC-3); Opus is not among them.
        for c in codecs:
            if c.split(".")[0] in AUDIO_CODECS and c not in APPLE_AUDIO:
                out.add(path, "Auth 2.2", f"{where}: audio codec {c} is not one Apple lists")
        # Auth 9.16: VIDEO-RANGE, when given, is one of the enumerated values.
        if "VIDEO-RANGE" in a and a["VIDEO-RANGE"] not in ("SDR", "PQ", "HLG"):
            out.add(path, "R61 Auth 9.16", f"{where}: VIDEO-RANGE={a['VIDEO-RANGE']}")
        # R62 HLS2 §4.4.6.2.1: AUDIO names an audio group, and CODECS lists its format.
        if "AUDIO" in a:
            if ("AUDIO", a["AUDIO"]) not in groups:
                out.add(path, "R62 HLS2 §4.4.6.2", f"{where}: AUDIO={a['AUDIO']} has no group")
            if not any(c.split(".")[0] in AUDIO_CODECS for c in codecs):
                out.add(path, "R61 Auth 9.1",
                        f"{where}: CODECS {a.get('CODECS')} lacks the audio group's codec")
        # HLS2 §4.4.6.2: CLOSED-CAPTIONS is NONE on every variant or on none; a group name
        # refers to a CLOSED-CAPTIONS group.
        cc = a.get("CLOSED-CAPTIONS")
        if cc is not None:
            cc_none.append(cc == "NONE")
            quoted = re.search(r'CLOSED-CAPTIONS="', t.value) is not None
            if quoted and ("CLOSED-CAPTIONS", cc) not in groups:
                out.add(path, "HLS2 §4.4.6.2", f"{where}: CLOSED-CAPTIONS={cc} has no group")
            if not quoted and cc != "NONE":
                out.add(path, "HLS2 §4.4.6.2", f"{where}: CLOSED-CAPTIONS={cc}")
        elif video:
            cc_none.append(False)
    if any(cc_none) and not all(cc_none):
        out.add(path, "HLS2 §4.4.6.2", "CLOSED-CAPTIONS=NONE on some variants only")
    for (ty, gid), members in groups.items():
        names = [m.get("NAME") for m in members]
        for m in members:
            if not m.get("GROUP-ID") or not m.get("NAME") or not ty:
                out.add(path, "R62 HLS2 §4.4.6.1", "EXT-X-MEDIA without TYPE, GROUP-ID or NAME")
            # Auth 8.10 (validator: "The LANGUAGE attribute MUST be included in every
            # EXT-X-MEDIA tag that does not have TYPE=VIDEO").
            if ty != "VIDEO" and not m.get("LANGUAGE"):
                out.add(path, "R62 Auth 8.10", f"EXT-X-MEDIA {m.get('NAME')} without LANGUAGE")
            if ty == "AUDIO" and not m.get("CHANNELS"):
                out.add(path, "R62 HLS2 §4.4.6.1", f"audio {m.get('NAME')} without CHANNELS")
            if m.get("DEFAULT") == "YES" and m.get("AUTOSELECT") != "YES":
                out.add(path, "R62 HLS2 §4.4.6.1",
                        f"EXT-X-MEDIA {m.get('NAME')}: DEFAULT=YES without AUTOSELECT=YES")
        if len(set(names)) != len(names):
            out.add(path, "R62 HLS2 §4.4.6.1", f"group {gid}: NAMEs not unique")
        if sum(m.get("DEFAULT") == "YES" for m in members) > 1:
            out.add(path, "R62 HLS2 §4.4.6.1", f"group {gid}: more than one DEFAULT=YES")
    if has_video:
        # Auth 6.1: I-frame playlists for scrubbing; Auth 9.9: several bit rates of video.
        if "#EXT-X-I-FRAME-STREAM-INF" not in raw.count:
            out.add(path, "Auth 6.1", "no I-frame playlist (EXT-X-I-FRAME-STREAM-INF)")
        if len({t.attrs.get("BANDWIDTH") for t in raw.tags if t.name == "#EXT-X-STREAM-INF"}) < 2:
            out.add(path, "Auth 9.9", "a single bit rate of video")
    # Auth 9.11 (R35): every video segment starts with an IDR (checked in the media playlists),
    # so EXT-X-INDEPENDENT-SEGMENTS belongs in the multivariant playlist.
    if has_video and "#EXT-X-INDEPENDENT-SEGMENTS" not in raw.count:
        out.add(path, "R35 Auth 9.11", "video variants without EXT-X-INDEPENDENT-SEGMENTS")
    return pl


# ---------------------------------------------------------------------------------------------
# Cross-playlist rules: a multivariant playlist and the media playlists it names.


def resolve(base_path, uri):
    u = urllib.parse.urlsplit(uri)
    if u.scheme or u.netloc:
        return None
    return os.path.normpath(os.path.join(os.path.dirname(base_path), urllib.parse.unquote(u.path)))


def check_stream(mv_path, mv_raw, media, out, same_snapshot):
    """media: path -> (text, Raw, m3u8 playlist) for every playlist on the command line."""
    uris = [s.uri for s in mv_raw.segments]  # the variant URI lines
    uris += [t.attrs["URI"] for t in mv_raw.tags if t.name == "#EXT-X-MEDIA" and "URI" in t.attrs]
    paths = []
    for u in uris:
        p = resolve(mv_path, u)
        if p is None:
            continue
        if p not in media and os.path.isfile(p):
            with open(p, encoding="utf-8", newline="") as f:
                text = f.read()
            try:
                media[p] = (text, Raw(text), m3u8.loads(text))
            except Exception as e:  # reported when the file itself is checked
                out.add(p, "HLS2 §4", f"the m3u8 package cannot parse it: {e}")
                continue
        if p in media and p not in paths:
            paths.append(p)
    if not paths:
        return
    mv_independent = "#EXT-X-INDEPENDENT-SEGMENTS" in mv_raw.count
    sc_values = {p: media[p][1].value("#EXT-X-SERVER-CONTROL") for p in paths}
    tds = {p: media[p][1].value("#EXT-X-TARGETDURATION") for p in paths}
    pts = [media[p][2].part_inf.part_target for p in paths if media[p][2].part_inf]
    # R13 HLS2 §6.2.4: identical SERVER-CONTROL in every media playlist of the multivariant.
    if len(set(sc_values.values())) > 1:
        out.add(mv_path, "R13 HLS2 §6.2.4", f"SERVER-CONTROL differs between renditions: {sc_values}")
    # R29 HLS2 §6.2.4: same TARGETDURATION everywhere.
    if len(set(tds.values())) > 1:
        out.add(mv_path, "R29 HLS2 §6.2.4", f"TARGETDURATION differs between renditions: {tds}")
    # R10: PART-HOLD-BACK >= 3 x the largest PART-TARGET when renditions differ.
    for p in paths:
        sc = media[p][2].server_control
        if pts and sc is not None and sc.part_hold_back is not None:
            if sc.part_hold_back < 3 * max(pts) - 1e-9:
                out.add(p, "R10 Auth 14.3",
                        f"PART-HOLD-BACK {sc.part_hold_back} < 3 x the largest PART-TARGET {max(pts)}")
    for p in paths:
        text, raw, pl = media[p]
        live = not pl.is_endlist and pl.playlist_type != "vod"
        # R35 HLS2 §4.4.2.1: not repeated in media playlists when in the multivariant.
        if mv_independent and "#EXT-X-INDEPENDENT-SEGMENTS" in raw.count:
            out.add(p, "R35 HLS2 §4.4.2.1",
                    "EXT-X-INDEPENDENT-SEGMENTS repeated from the multivariant playlist")
        if not live or pl.server_control is None:
            continue
        # R19 HLS2 App.B.1: one report for every other media playlist, none for itself.
        reports = {}
        for t in raw.tags:
            if t.name == "#EXT-X-RENDITION-REPORT" and "URI" in t.attrs:
                reports[resolve(p, t.attrs["URI"])] = t.attrs
        if p in reports:
            out.add(p, "R19 HLS2 §4.4.5.4", "rendition report for the playlist itself")
        for q in paths:
            if q == p:
                continue
            if q not in reports:
                out.add(p, "R19 HLS2 App.B.1", f"no rendition report for {os.path.basename(q)}")
                continue
            # R18: LAST-MSN/LAST-PART = the other rendition's last part (same snapshot).
            other = media[q][1].last_part()
            if same_snapshot and other is not None and not media[q][2].is_endlist:
                own = raw.last_part()
                a = reports[q]
                got = (int(a.get("LAST-MSN", own[0] if own else -1)),
                       int(a.get("LAST-PART", own[1] if own else -1)))
                if got != other:
                    out.add(p, "R18 HLS2 §4.4.5.4",
                            f"report for {os.path.basename(q)} says {got}, it has {other}")
    # R63 HLS2 §6.2.4: discontinuity sequence numbers and date-time mapping consistent across
    # renditions (same MSN = same time slot; audio boundaries may differ by an audio frame).
    by_msn = {}
    for p in paths:
        raw = media[p][1]
        ds = int(raw.value("#EXT-X-DISCONTINUITY-SEQUENCE", "0"))
        for s in raw.all_parents():
            ds += 1 if s.discontinuity else 0
            by_msn.setdefault(s.msn, []).append((p, ds, s.pdt))
    for msn, entries in sorted(by_msn.items()):
        if len({e[1] for e in entries}) > 1:
            out.add(mv_path, "R63 HLS2 §6.2.4", f"MSN {msn}: discontinuity sequence differs")
        times = [parse_pdt(e[2]) for e in entries if e[2] and PDT_RE.match(e[2])]
        if times and (max(times) - min(times)).total_seconds() > 0.05:
            out.add(mv_path, "R63 HLS2 §6.2.4",
                    f"MSN {msn}: PROGRAM-DATE-TIME differs by "
                    f"{(max(times) - min(times)).total_seconds():.3f} s between renditions")
    # Auth 8.3: audio and video playlists contain the same duration of content (over the MSNs
    # they share; audio segments may end up to an audio frame off the video's).
    spans = {}
    for p in paths:
        for s in media[p][1].segments:
            spans.setdefault(s.msn, {})[p] = s.duration
    common = [d for d in spans.values() if len(d) == len(paths)]
    if len(paths) > 1 and common:
        totals = {p: sum(d[p] for d in common) for p in paths}
        if max(totals.values()) - min(totals.values()) > 0.1:
            out.add(mv_path, "Auth 8.3",
                    f"renditions last {sorted(round(t, 3) for t in totals.values())} s over "
                    f"the same {len(common)} segments")
    check_stream_media(mv_path, mv_raw, paths, media, out, mv_independent)


# ---------------------------------------------------------------------------------------------
# Media: ISO BMFF boxes of the init sections and parts next to the playlists.

def boxes(data, off=0, end=None):
    end = len(data) if end is None else end
    while off + 8 <= end:
        size, typ = struct.unpack(">I4s", data[off:off + 8])
        hdr = 8
        if size == 1:
            size = struct.unpack(">Q", data[off + 8:off + 16])[0]
            hdr = 16
        elif size == 0:
            size = end - off
        if size < hdr or off + size > end:
            raise ValueError(f"box {typ!r} at {off} overruns its parent")
        yield typ, off + hdr, off + size
        off += size


def find(data, path, off=0, end=None):
    """Every box at the given type path (list of 4-byte types) below data[off:end]."""
    if not path:
        return [(off, end)]
    found = []
    for typ, s, e in boxes(data, off, end):
        if typ == path[0]:
            found += find(data, path[1:], s, e) if len(path) > 1 else [(s, e)]
    return found


def sample_entry(data, stsd):
    """(format, body start, body end) of the first sample entry of an stsd payload."""
    s, e = stsd
    (count,) = struct.unpack(">I", data[s + 4:s + 8])
    if count == 0:
        return None
    for typ, bs, be in boxes(data, s + 8, e):
        return typ.decode("latin-1"), bs, be
    return None


def init_info(path, data, out):
    """Checks an init section; returns {track_id: (handler, sample entry format, extra)}."""
    tracks = {}
    top = [t for t, _, _ in boxes(data)]
    # R65 HLS2 §3.1.2: ftyp with a brand compatible with iso6 or later, then moov; no samples.
    if top[:2] != [b"ftyp", b"moov"]:
        out.add(path, "R65 HLS2 §3.1.2", f"init section boxes {top} do not start ftyp, moov")
        return tracks
    s, e = find(data, [b"ftyp"])[0]
    brands = [data[s:s + 4]] + [data[i:i + 4] for i in range(s + 8, e, 4)]
    ok = {b"iso6", b"iso7", b"iso8", b"iso9", b"cmfc", b"cmf2"}
    if not ok & set(brands):
        out.add(path, "R65 HLS2 §3.1.2", f"ftyp brands {brands} lack iso6 (or later) / cmfc")
    if b"moof" in top or b"mdat" in top:
        out.add(path, "R33 HLS2 §4.4.4.5", "init section holds media samples")
    traks = find(data, [b"moov", b"trak"])
    trex = find(data, [b"moov", b"mvex", b"trex"])
    if not find(data, [b"moov", b"mvex"]):
        out.add(path, "R65 HLS2 §3.1.2", "init section without mvex")
    trex_ids = {struct.unpack(">I", data[ts + 4:ts + 8])[0]: ts for ts, _ in trex}
    for ts, te in traks:
        tkhd = find(data, [b"tkhd"], ts, te)[0]
        ver = data[tkhd[0]]
        tid = struct.unpack(">I", data[tkhd[0] + (20 if ver == 1 else 12):][:4])[0]
        hdlr = find(data, [b"mdia", b"hdlr"], ts, te)[0]
        handler = data[hdlr[0] + 8:hdlr[0] + 12].decode("latin-1")
        stsd = find(data, [b"mdia", b"minf", b"stbl", b"stsd"], ts, te)
        entry = sample_entry(data, stsd[0]) if stsd else None
        if tid not in trex_ids:
            out.add(path, "R65 HLS2 §3.1.2", f"track {tid} without trex")
        default_flags = default_dur = None
        if tid in trex_ids:
            t0 = trex_ids[tid]
            default_dur = struct.unpack(">I", data[t0 + 12:t0 + 16])[0]
            default_flags = struct.unpack(">I", data[t0 + 20:t0 + 24])[0]
        mdhd = find(data, [b"mdia", b"mdhd"], ts, te)[0]
        off = mdhd[0] + (20 if data[mdhd[0]] == 1 else 12)
        timescale = struct.unpack(">I", data[off:off + 4])[0]
        info = {"handler": handler, "format": entry[0] if entry else None, "flags": default_flags,
                "duration": default_dur, "timescale": timescale}
        if entry and handler == "vide":
            fmt, bs, be = entry
            # Auth 1.10: parameter sets out of band ('avc1'/'hvc1', not 'avc3'/'hev1').
            if fmt in ("avc3", "hev1"):
                out.add(path, "R65 Auth 1.10", f"video sample entry {fmt} (use avc1/hvc1)")
            info["width"], info["height"] = struct.unpack(">HH", data[bs + 24:bs + 28])
            for typ, cs, ce in boxes(data, bs + 78, be):
                if typ == b"avcC":
                    info["avc"] = "%02x%02x%02x" % tuple(data[cs + 1:cs + 4])
                    # Auth 1.3b: H.264 at most High Profile (Constrained Baseline, Main,
                    # Extended and High; not High 10/4:2:2/4:4:4), Level 5.2.
                    prof, level = data[cs + 1], data[cs + 3]
                    if prof not in (66, 77, 88, 100) or level > 52:
                        out.add(path, "Auth 1.3b",
                                f"H.264 profile {prof} level {level} above High Profile Level 5.2")
        tracks[tid] = info
    return tracks


def fragment_info(data, tracks):
    """{track_id: (first sample is sync, total duration in ticks, first tfdt)} for a part or
    segment (one or more moof + mdat pairs)."""
    res = {}
    for ms, me in find(data, [b"moof"]):
        for ts, te in find(data, [b"traf"], ms, me):
            tfhd = find(data, [b"tfhd"], ts, te)[0]
            flags = int.from_bytes(data[tfhd[0] + 1:tfhd[0] + 4], "big")
            tid = struct.unpack(">I", data[tfhd[0] + 4:tfhd[0] + 8])[0]
            pos = tfhd[0] + 8
            default = tracks.get(tid, {}).get("flags")
            default_dur = tracks.get(tid, {}).get("duration")
            for bit, size in ((0x1, 8), (0x2, 4)):
                if flags & bit:
                    pos += size
            if flags & 0x8:
                default_dur = struct.unpack(">I", data[pos:pos + 4])[0]
                pos += 4
            if flags & 0x10:
                pos += 4
            if flags & 0x20:
                default = struct.unpack(">I", data[pos:pos + 4])[0]
            tfdt = None
            for ds, _ in find(data, [b"tfdt"], ts, te):
                ver = data[ds]
                tfdt = int.from_bytes(data[ds + 4:ds + (12 if ver == 1 else 8)], "big")
            for rs, re_ in find(data, [b"trun"], ts, te):
                tflags = int.from_bytes(data[rs + 1:rs + 4], "big")
                (count,) = struct.unpack(">I", data[rs + 4:rs + 8])
                pos = rs + 8 + (4 if tflags & 0x1 else 0)
                first = None
                if tflags & 0x4:
                    first = struct.unpack(">I", data[pos:pos + 4])[0]
                    pos += 4
                per = 4 * bin(tflags & 0xF00).count("1")
                total = 0
                for i in range(count):
                    e = pos + i * per
                    if tflags & 0x100:
                        total += struct.unpack(">I", data[e:e + 4])[0]
                    else:
                        total += default_dur or 0
                    if i == 0 and first is None and tflags & 0x400:
                        off = (4 if tflags & 0x100 else 0) + (4 if tflags & 0x200 else 0)
                        first = struct.unpack(">I", data[e + off:e + off + 4])[0]
                if first is None:
                    first = default
                sync, dur, start = res.get(tid, (None, 0, tfdt))
                if sync is None and count > 0 and first is not None:
                    # ISO 14496-12 §8.8.3.1: sample_is_non_sync_sample bit (0x10000).
                    sync = not (first >> 16) & 1
                res[tid] = (sync, dur + total, start)
    return res


def check_stream_media(mv_path, mv_raw, paths, media, out, mv_independent):
    variants = [t for t in mv_raw.tags if t.name == "#EXT-X-STREAM-INF"]
    codecs = set()
    resolutions = set()
    for v in variants:
        codecs |= set(codec_list(v.attrs.get("CODECS")))
        if "RESOLUTION" in v.attrs:
            resolutions.add(v.attrs["RESOLUTION"])
    rates = {}  # msn -> {playlist: bits per second} of complete segments on disk
    for p in paths:
        raw = media[p][1]
        maps = {t.attrs.get("URI") for t in raw.tags if t.name == "#EXT-X-MAP"}
        for m in maps:
            f = resolve(p, m) if m else None
            if not f or not os.path.isfile(f):
                continue
            with open(f, "rb") as fh:
                data = fh.read()
            try:
                tracks = init_info(f, data, out)
            except (ValueError, IndexError, struct.error) as e:
                out.add(f, "R65 HLS2 §3.1.2", f"init section does not parse: {e}")
                continue
            for tid, info in tracks.items():
                if info.get("avc"):
                    # R61 Auth 9.1 (player-test --break-codecs, validator CODECS mismatch): the
                    # avc1.PPCCLL in CODECS is the one in avcC.
                    want = f"{info['format']}.{info['avc']}"
                    if not any(c.lower() == want for c in codecs):
                        out.add(mv_path, "R61 Auth 9.1",
                                f"CODECS {sorted(codecs)} lack {want} of {os.path.basename(f)}")
                if "width" in info:
                    # Validator -50020: declared RESOLUTION matches the parsed resolution.
                    res = f"{info['width']}x{info['height']}"
                    if resolutions and res not in resolutions:
                        out.add(mv_path, "R61 Auth 9.2",
                                f"RESOLUTION {sorted(resolutions)} but {os.path.basename(f)} "
                                f"is {res}")
                if info["handler"] == "soun" and not any(
                        c.split(".")[0] in AUDIO_CODECS for c in codecs):
                    out.add(mv_path, "R61 Auth 9.1", f"CODECS {sorted(codecs)} lack the audio codec")
            # The track whose durations the playlist gives: video if any (R68), else audio.
            main = [t for t, i in tracks.items() if i["handler"] == "vide"]
            main = main or [t for t, i in tracks.items() if i["handler"] == "soun"]
            if not main:
                continue
            tid = main[0]
            video = tracks[tid]["handler"] == "vide"
            scale = tracks[tid]["timescale"] or 1

            infos = {}  # uri -> ({track: (sync, ticks, tfdt)}, size) of the files on disk

            def frag(uri):
                if uri in infos:
                    return infos[uri]
                f = resolve(p, uri)
                infos[uri] = None, None
                if not f or not os.path.isfile(f):
                    return None, None
                with open(f, "rb") as fh:
                    fdata = fh.read()
                try:
                    info = fragment_info(fdata, tracks)
                except (ValueError, IndexError, struct.error) as e:
                    out.add(f, "R66 HLS2 §3.1.2", f"fragment does not parse: {e}")
                    return None, None
                if tid not in info:
                    out.add(f, "R66 HLS2 §3.1.2", f"fragment without track {tid}")
                    return None, None
                infos[uri] = info, len(fdata)
                return infos[uri]

            frame = 0.0  # one frame for Auth 8.1: trex's default sample duration, or 1/24 s
            checks = []
            for part in raw.all_parts():
                if part.byterange or part.gap or not part.uri:
                    continue
                got, _ = frag(part.uri)
                if got is None:
                    continue
                sync, ticks, _ = got[tid]
                checks.append((f"part {part.uri}", part.duration, ticks / scale))
                if not video:
                    continue
                # Validator "(PartialSegment) Partial segments marked INDEPENDENT MUST contain
                # a sync frame" and "... that contain a sync frame SHOULD be marked INDEPENDENT"
                # (R70): the first video sample of each part against its INDEPENDENT=YES.
                if sync is False and part.independent:
                    out.add(p, "R70 validator",
                            f"part {part.uri} is INDEPENDENT=YES but starts without a sync sample")
                if sync and not part.independent:
                    out.add(p, "R70 validator",
                            f"part {part.uri} starts with a sync sample but is not INDEPENDENT=YES")
            for seg in raw.segments:
                if seg.gap or any(t.name == "#EXT-X-BYTERANGE" for t in seg.tags):
                    continue
                got, size = frag(seg.uri)
                if got is None:
                    continue
                sync, ticks, _ = got[tid]
                checks.append((f"segment {seg.uri}", seg.duration, ticks / scale))
                rates.setdefault(seg.msn, {})[p] = size * 8 / seg.duration
                # Auth 7.4 (validator "Video segments MUST start with an IDR frame [#1021]").
                if video and sync is False:
                    out.add(p, "R70 Auth 7.4", f"segment {seg.uri} does not start with a sync sample")
                # R5 HLS2 §3.2: a parent carries the samples of its parts: same start, same
                # duration, every track.
                parts = [frag(q.uri)[0] for q in seg.parts if not q.byterange]
                if seg.parts and all(parts) and len(parts) == len(seg.parts):
                    for t, (_, d, start) in got.items():
                        pstart = parts[0].get(t, (None, 0, None))[2]
                        pdur = sum(q.get(t, (None, 0, None))[1] for q in parts)
                        if (start, d) != (pstart, pdur):
                            out.add(p, "R5 HLS2 §3.2",
                                    f"{seg.uri} track {t}: starts {start} lasting {d}, its parts "
                                    f"start {pstart} lasting {pdur}")
            # Auth 7.3: each fragment's tfdt continues the previous one's (tfdt + duration) on
            # every track, across parts and segments, except after a GAP or a discontinuity.
            expect = {}
            for s in raw.all_parents():
                if s.discontinuity:
                    expect = {}
                units = [q.uri for q in s.parts] if s.parts else [s.uri] if s.uri else []
                if (s.gap and not s.parts) or any(q.gap or q.byterange for q in s.parts) \
                        or any(t.name == "#EXT-X-BYTERANGE" for t in s.tags):
                    expect = {}
                    continue
                for u in units:
                    got, _ = frag(u) if u else (None, None)
                    if got is None:
                        expect = {}
                        continue
                    for t, (_, d, start) in got.items():
                        if t in expect and start is not None and start != expect[t]:
                            out.add(p, "R68 Auth 7.3",
                                    f"{u} track {t}: tfdt {start}, the previous fragment ends at "
                                    f"{expect[t]}")
                        if start is not None:
                            expect[t] = start + d
            if video and tracks[tid].get("duration"):
                frame = tracks[tid]["duration"] / scale
            frame = frame or 1 / 24
            # Auth 8.1 (validator "Playlist vs segment duration mismatch"): durations in the
            # playlist within one video frame of the media's (R68).
            for what, listed, actual in checks:
                if abs(listed - actual) > frame + 1e-3:
                    out.add(p, "R68 Auth 8.1",
                            f"{what}: playlist says {listed} s, the media lasts {actual:.5f} s")
    # Auth 1.29 (validator "Measured peak bitrate ... exceeds error tolerance"): for live
    # content the measured peak segment bit rate, summed over the renditions played together,
    # stays below 125% of BANDWIDTH.
    if not any(not media[p][2].is_endlist for p in paths):
        return
    variant_uris = [s.uri for s in mv_raw.segments]
    for v, uri in zip(variants, variant_uris):
        if not v.attrs.get("BANDWIDTH", "").isdigit():
            continue
        bw = int(v.attrs["BANDWIDTH"])
        group = [resolve(mv_path, t.attrs["URI"]) for t in mv_raw.tags
                 if t.name == "#EXT-X-MEDIA" and t.attrs.get("TYPE") == "AUDIO"
                 and t.attrs.get("GROUP-ID") == v.attrs.get("AUDIO") and "URI" in t.attrs]
        played = [resolve(mv_path, uri)] + group[:1]
        for msn, per in sorted(rates.items()):
            if not all(q in per for q in played):
                continue
            peak = sum(per[q] for q in played)
            if peak > 1.25 * bw:
                out.add(mv_path, "Auth 1.29",
                        f"MSN {msn}: {peak:.0f} bit/s, above 125% of BANDWIDTH {bw}")


# ---------------------------------------------------------------------------------------------


def validate(paths, same_snapshot=False):
    """Returns the Problems found in the given playlist files."""
    out = Problems()
    media = {}
    multivariants = []
    for path in paths:
        # newline="": keep CRs, so that check_syntax sees them.
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
        raw = Raw(text)
        if not text.startswith("#EXTM3U\n"):
            out.add(path, "HLS2 §4.4.1.1", "does not start with #EXTM3U")
        check_syntax(path, text, raw, out)
        if "#EXT-X-STREAM-INF" in text:
            check_multivariant(path, text, raw, out)
            multivariants.append((path, raw))
        elif "#EXT-X-TARGETDURATION" in text:
            pl = check_media(path, text, raw, out)
            if pl is not None:
                media[os.path.normpath(path)] = (text, raw, pl)
        else:
            out.add(path, "HLS2 §4", "neither a media nor a multivariant playlist")
    for path, raw in multivariants:
        check_stream(os.path.normpath(path), raw, media, out, same_snapshot)
    return out


def main():
    args = sys.argv[1:]
    same = "--same-snapshot" in args
    paths = [a for a in args if a != "--same-snapshot"]
    out = validate(paths, same)
    for p in out.items:
        print(p, file=sys.stderr)
    if out.items:
        sys.exit(1)
    print(f"validated {len(paths)} playlists")
    if out.waived:
        print(f"open findings (waived, see OPEN_FINDINGS): {', '.join(sorted(out.waived))}")


if __name__ == "__main__":
    main()
