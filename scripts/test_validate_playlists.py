#!/usr/bin/env python3
"""Negative tests for validate_playlists.py: a small valid LL-HLS stream (multivariant, video
and audio media playlists, init sections, parts and segments written to a temp dir) passes,
and each rule fails on a copy broken in exactly the way the rule forbids.

Run: python3 scripts/test_validate_playlists.py (also run by packager/tests/views.rs)."""
import os
import struct
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in scripts/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import validate_playlists as vp  # noqa: E402

# ---------------------------------------------------------------------------------------------
# Minimal ISO BMFF writer.


def box(t, payload):
    return struct.pack(">I4s", 8 + len(payload), t) + payload


def full(t, flags, payload, version=0):
    return box(t, bytes([version]) + flags.to_bytes(3, "big") + payload)


def init_section(kind, brands=(b"iso6", b"cmfc"), fmt=b"avc1", size=(1280, 720), mvex=True,
                 profile=b"\x64\x00\x1f"):
    tid = 1 if kind == "vide" else 2
    if kind == "vide":
        entry_body = (bytes(6) + struct.pack(">H", 1) + bytes(16) + struct.pack(">HH", *size)
                      + bytes(50) + box(b"avcC", b"\x01" + profile + b"\xff\xe0\x00"))
        entry = box(fmt, entry_body)
    else:
        entry = box(b"mp4a", bytes(6) + struct.pack(">H", 1) + bytes(20))
    stsd = full(b"stsd", 0, struct.pack(">I", 1) + entry)
    trak = box(b"trak",
               full(b"tkhd", 3, bytes(8) + struct.pack(">I", tid) + bytes(64))
               + box(b"mdia",
                     full(b"mdhd", 0, bytes(8) + struct.pack(">I", 90000 if tid == 1 else 48000)
                          + bytes(8))
                     + full(b"hdlr", 0, bytes(4) + kind.encode() + bytes(13))
                     + box(b"minf", box(b"stbl", stsd))))
    moov = full(b"mvhd", 0, bytes(96)) + trak
    if mvex:
        moov += box(b"mvex", full(b"trex", 0, struct.pack(">IIIII", tid, 1, 3000, 0, 0)))
    return box(b"ftyp", brands[0] + bytes(4) + b"".join(brands)) + box(b"moov", moov)


def fragment(tid, sync, seconds=0.5, size=1, start=0.0):
    """One moof + mdat of one sample of `size` bytes lasting `seconds` from `start`."""
    flags = 0x02000000 if sync else 0x01010000
    scale = 90000 if tid == 1 else 48000
    ticks = round(seconds * scale)
    trun = full(b"trun", 0x1 | 0x4 | 0x100 | 0x200,
                struct.pack(">IiIII", 1, 0, flags, ticks, size))
    traf = box(b"traf", full(b"tfhd", 0x020000, struct.pack(">I", tid))
               + full(b"tfdt", 0, struct.pack(">Q", round(start * scale)), version=1) + trun)
    return box(b"moof", full(b"mfhd", 0, struct.pack(">I", 1)) + traf) + box(b"mdat", b"x" * size)


# ---------------------------------------------------------------------------------------------
# A valid stream: TD 2, PART-TARGET 0.5, six segments (MSN 100-105), parts on the last two
# and on the unfinished parent 106 (two parts so far).

MULTIVARIANT = """#EXTM3U
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="audio",LANGUAGE="und",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="2",URI="audio.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=2000000,AVERAGE-BANDWIDTH=1800000,CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=1280x720,FRAME-RATE=30.000,AUDIO="a",CLOSED-CAPTIONS=NONE
video.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=1000000,AVERAGE-BANDWIDTH=900000,CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=1280x720,FRAME-RATE=30.000,AUDIO="a",CLOSED-CAPTIONS=NONE
low/video.m3u8
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=200000,CODECS="avc1.64001f",RESOLUTION=1280x720,URI="iframes.m3u8"
"""


def media_playlist(name, other, audio=False):
    out = [
        "#EXTM3U",
        "#EXT-X-VERSION:6",
        "#EXT-X-TARGETDURATION:2",
        "#EXT-X-PART-INF:PART-TARGET=0.5",
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.0,HOLD-BACK=6.0,"
        "PART-HOLD-BACK=1.5",
        "#EXT-X-MEDIA-SEQUENCE:100",
        "#EXT-X-DISCONTINUITY-SEQUENCE:0",
        f'#EXT-X-MAP:URI="{name}/init.mp4"',
    ]
    for i in range(7):
        msn = 100 + i
        out.append(f"#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:{2 * i:02d}.000Z")
        nparts = 4 if i in (4, 5) else 2 if i == 6 else 0
        for j in range(nparts):
            ind = ",INDEPENDENT=YES" if j == 0 or audio else ""
            out.append(f'#EXT-X-PART:DURATION=0.50000,URI="{name}/{msn}.{j}.m4s"{ind}')
        if i < 6:
            out += ["#EXTINF:2.00000,", f"{name}/{msn}.m4s"]
    out.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{name}/106.2.m4s"')
    out.append(f'#EXT-X-RENDITION-REPORT:URI="{other}.m3u8",LAST-MSN=106,LAST-PART=1')
    return "\n".join(out) + "\n"


class Stream:
    def __init__(self, root):
        self.root = root
        self.files = {
            "index.m3u8": MULTIVARIANT,
            "video.m3u8": media_playlist("video", "audio"),
            "audio.m3u8": media_playlist("audio", "video", audio=True),
        }
        self.blobs = {"video/init.mp4": init_section("vide"),
                      "audio/init.mp4": init_section("soun")}
        for msn in range(100, 107):
            t = (msn - 100) * 2.0
            for j in range(4):
                self.blobs[f"video/{msn}.{j}.m4s"] = fragment(1, j == 0, start=t + j * 0.5)
            self.blobs[f"video/{msn}.m4s"] = fragment(1, True, 2.0, start=t)
            self.blobs[f"audio/{msn}.m4s"] = fragment(2, True, 2.0, 32_000, start=t)

    def edit(self, name, old, new, count=1):
        text = self.files[name]
        assert old in text, f"{old!r} not in {name}"
        self.files[name] = text.replace(old, new, count)

    def run(self, same_snapshot=True, names=None):
        for rel, text in self.files.items():
            with open(os.path.join(self.root, rel), "w", encoding="utf-8", newline="") as f:
                f.write(text)
        for rel, data in self.blobs.items():
            p = os.path.join(self.root, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(data)
        paths = [os.path.join(self.root, n) for n in (names or self.files)]
        return vp.validate(paths, same_snapshot).items


class Rules(unittest.TestCase):
    def setUp(self):
        self.saved = vp.OPEN_FINDINGS
        vp.OPEN_FINDINGS = []  # every rule enforced here, waived or not in the real suite
        self.tmp = tempfile.TemporaryDirectory()
        self.s = Stream(self.tmp.name)

    def tearDown(self):
        vp.OPEN_FINDINGS = self.saved
        self.tmp.cleanup()

    def fails(self, rule, **kw):
        problems = self.s.run(**kw)
        self.assertTrue(any(f"[{rule}]" in p for p in problems),
                        f"expected [{rule}], got {problems}")

    def v(self, old, new, count=1):
        self.s.edit("video.m3u8", old, new, count)

    def mv(self, old, new, count=1):
        self.s.edit("index.m3u8", old, new, count)

    def test_the_valid_stream_passes(self):
        self.assertEqual(self.s.run(), [])

    # --- SERVER-CONTROL / PART-INF
    def test_part_hold_back_below_three_part_targets(self):
        for n in ("video.m3u8", "audio.m3u8"):
            self.s.edit(n, "PART-HOLD-BACK=1.5", "PART-HOLD-BACK=1.0")
        self.fails("R10 Auth 14.3")

    def test_hold_back_below_three_target_durations(self):
        self.v("HOLD-BACK=6.0", "HOLD-BACK=5.0")
        self.fails("R9 HLS2 §4.4.3.8")

    def test_can_skip_until_below_six_target_durations(self):
        self.v("CAN-SKIP-UNTIL=12.0", "CAN-SKIP-UNTIL=11.0")
        self.fails("R11 HLS2 §4.4.3.8")

    def test_can_skip_dateranges_without_can_skip_until(self):
        self.v("CAN-SKIP-UNTIL=12.0", "CAN-SKIP-DATERANGES=YES")
        self.fails("R12 HLS2 §4.4.3.8")

    def test_no_blocking_reload(self):
        self.v("CAN-BLOCK-RELOAD=YES,", "")
        self.fails("R8 HLS2 App.B.1")

    # --- parts
    def test_part_longer_than_part_target_even_by_a_hair(self):
        self.v('DURATION=0.50000,URI="video/105.1', 'DURATION=0.50001,URI="video/105.1')
        self.fails("R3 HLS2 §4.4.4.9")

    def test_short_part_in_the_middle_of_a_parent(self):
        self.v('DURATION=0.50000,URI="video/105.1', 'DURATION=0.40000,URI="video/105.1')
        self.fails("R3 HLS2 §4.4.4.9")

    def test_short_final_part_of_a_parent_is_fine(self):
        self.v('DURATION=0.50000,URI="video/105.3.m4s"', 'DURATION=0.40000,URI="video/105.3.m4s"')
        self.v("#EXTINF:2.00000,\nvideo/105.m4s", "#EXTINF:1.90000,\nvideo/105.m4s")
        problems = self.s.run()
        self.assertFalse([p for p in problems if "R3 " in p], problems)

    def test_first_part_of_a_parent_not_independent(self):
        self.v('URI="video/105.0.m4s",INDEPENDENT=YES', 'URI="video/105.0.m4s"')
        self.fails("R70 Auth 7.4")

    def test_program_date_time_after_the_first_part(self):
        self.v('#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:10.000Z\n#EXT-X-PART:DURATION=0.50000,URI="video/105.0.m4s",INDEPENDENT=YES\n',
               '#EXT-X-PART:DURATION=0.50000,URI="video/105.0.m4s",INDEPENDENT=YES\n#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:10.000Z\n')
        self.fails("R4 HLS2 §4.4.4.9")

    def test_gap_segment_with_parts_that_are_not_gap(self):
        self.v("#EXTINF:2.00000,\nvideo/105.m4s", "#EXT-X-GAP\n#EXTINF:2.00000,\nvideo/105.m4s")
        self.fails("R34 HLS2 §6.2.1")

    def test_parts_kept_more_than_three_target_durations(self):
        for msn in (102, 103):
            self.v(f"#EXTINF:2.00000,\nvideo/{msn}.m4s",
                   "".join(f'#EXT-X-PART:DURATION=0.50000,URI="video/{msn}.{j}.m4s"'
                           + (",INDEPENDENT=YES" if j == 0 else "") + "\n" for j in range(4))
                   + f"#EXTINF:2.00000,\nvideo/{msn}.m4s")
        self.fails("R7 HLS2 §6.2.2")

    def test_parts_removed_out_of_order(self):
        self.v('#EXT-X-PART:DURATION=0.50000,URI="video/105.0.m4s",INDEPENDENT=YES\n', "")
        for j in (1, 2, 3):
            self.v(f'#EXT-X-PART:DURATION=0.50000,URI="video/105.{j}.m4s"\n', "")
        self.fails("R7 HLS2 §6.2.2")

    def test_parts_span_less_than_part_hold_back(self):
        for msn in (104, 105):
            for j in range(4):
                ind = ",INDEPENDENT=YES" if j == 0 else ""
                self.v(f'#EXT-X-PART:DURATION=0.50000,URI="video/{msn}.{j}.m4s"{ind}\n', "")
        self.v('URI="video/106.1.m4s"\n', 'URI="video/106.1.m4s"\n', 1)
        for n in ("video.m3u8", "audio.m3u8"):
            self.s.edit(n, "PART-HOLD-BACK=1.5", "PART-HOLD-BACK=1.5001")
        self.fails("R7 HLS2 §6.2.2")

    def test_live_playlist_without_parts(self):
        self.s.files["video.m3u8"] = "\n".join(
            line for line in self.s.files["video.m3u8"].split("\n")
            if not line.startswith("#EXT-X-PART:")).replace(
            "video/106.2.m4s", "video/106.0.m4s")
        self.fails("R15 HLS2 App.B.1")

    # --- preload hint
    def test_no_preload_hint(self):
        self.v('#EXT-X-PRELOAD-HINT:TYPE=PART,URI="video/106.2.m4s"\n', "")
        self.fails("R15 HLS2 App.B.1")

    def test_two_part_hints(self):
        self.v('#EXT-X-PRELOAD-HINT:TYPE=PART,URI="video/106.2.m4s"\n',
               '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="video/106.2.m4s"\n'
               '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="video/106.3.m4s"\n')
        self.fails("R15 HLS2 §4.4.5.3")

    def test_hint_for_a_part_already_listed(self):
        self.v('TYPE=PART,URI="video/106.2.m4s"', 'TYPE=PART,URI="video/106.1.m4s"')
        self.fails("R15 HLS2 §4.4.5.3")

    def test_byte_range_hint_not_after_the_listed_parts(self):
        self.v('URI="video/106.0.m4s",INDEPENDENT=YES', 'URI="video/106.m4s",INDEPENDENT=YES,BYTERANGE="100@0"')
        self.v('URI="video/106.1.m4s"', 'URI="video/106.m4s",BYTERANGE="100@100"')
        self.v('TYPE=PART,URI="video/106.2.m4s"', 'TYPE=PART,URI="video/106.m4s",BYTERANGE-START=100')
        self.fails("R14 HLS2 §4.4.5.3")

    def test_hint_after_endlist(self):
        self.v("#EXT-X-RENDITION-REPORT", "#EXT-X-ENDLIST\n#EXT-X-RENDITION-REPORT")
        self.fails("R15 HLS2 §4.4.5.3", names=["video.m3u8"])

    # --- rendition reports
    def test_report_with_an_absolute_uri(self):
        self.v('REPORT:URI="audio.m3u8"', 'REPORT:URI="https://cdn.example/audio.m3u8"')
        self.fails("R18 HLS2 §4.4.5.4")

    def test_report_missing_for_another_rendition(self):
        self.v('#EXT-X-RENDITION-REPORT:URI="audio.m3u8",LAST-MSN=106,LAST-PART=1\n', "")
        self.fails("R19 HLS2 App.B.1")

    def test_report_for_the_playlist_itself(self):
        self.v('REPORT:URI="audio.m3u8"', 'REPORT:URI="video.m3u8"')
        self.fails("R19 HLS2 §4.4.5.4")

    def test_report_behind_the_other_rendition(self):
        self.v("LAST-MSN=106,LAST-PART=1", "LAST-MSN=106,LAST-PART=0")
        self.fails("R18 HLS2 §4.4.5.4")

    def test_report_with_a_bad_number(self):
        self.v("LAST-MSN=106,", "LAST-MSN=-1,")
        self.fails("R18 HLS2 §4.4.5.4")

    # --- delta updates and version
    def delta(self, skipped, version=9):
        self.v("#EXT-X-VERSION:6", f"#EXT-X-VERSION:{version}")
        self.v("#EXT-X-DISCONTINUITY-SEQUENCE:0\n",
               f"#EXT-X-DISCONTINUITY-SEQUENCE:0\n#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}\n")
        for msn in range(100, 100 + skipped):
            self.v(f"#EXTINF:2.00000,\nvideo/{msn}.m4s\n", "")
            self.v(f"#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:{2 * (msn - 100):02d}.000Z\n", "")

    def test_a_correct_delta_passes(self):
        self.v("#EXT-X-MEDIA-SEQUENCE:100", "#EXT-X-MEDIA-SEQUENCE:94")
        self.delta(0)
        problems = self.s.run(names=["video.m3u8"])
        self.assertEqual(problems, [])

    def test_skipping_into_the_skip_boundary(self):
        self.delta(1)
        self.fails("R21 HLS2 §6.2.5.1", names=["video.m3u8"])

    def test_media_sequence_after_skip(self):
        self.v("#EXT-X-MEDIA-SEQUENCE:100\n", "")
        self.delta(0)
        self.v("#EXT-X-MAP", "#EXT-X-MEDIA-SEQUENCE:100\n#EXT-X-MAP")
        self.fails("R24 hls.js", names=["video.m3u8"])

    def test_skip_with_version_6(self):
        self.delta(0, version=6)
        self.fails("R27 HLS2 §4.4.1.2", names=["video.m3u8"])

    def test_version_above_what_the_tags_need(self):
        self.v("#EXT-X-VERSION:6", "#EXT-X-VERSION:7")
        self.fails("R27 HLS2 §4.4.1.2")

    def test_skip_without_can_skip_until(self):
        self.delta(0)
        self.v("CAN-SKIP-UNTIL=12.0,", "")
        self.fails("R45 HLS2 §6.2.5.1", names=["video.m3u8"])

    # --- header and segments
    def test_extinf_of_exactly_td_plus_half_rounds_up(self):
        self.v("#EXTINF:2.00000,\nvideo/101.m4s", "#EXTINF:2.50000,\nvideo/101.m4s")
        self.fails("R29 HLS2 §4.4.3.1 Auth 7.7")

    def test_extinf_not_the_sum_of_its_parts(self):
        self.v("#EXTINF:2.00000,\nvideo/105.m4s", "#EXTINF:1.90000,\nvideo/105.m4s")
        self.fails("R5 HLS2 §3.2")

    def test_fractional_target_duration(self):
        self.v("#EXT-X-TARGETDURATION:2", "#EXT-X-TARGETDURATION:2.0")
        self.fails("R29 HLS2 §4.4.3.1")

    def test_no_discontinuity_sequence(self):
        self.v("#EXT-X-DISCONTINUITY-SEQUENCE:0\n", "")
        self.fails("R31 Auth 8.17")

    def test_no_media_sequence(self):
        self.v("#EXT-X-MEDIA-SEQUENCE:100\n", "")
        self.fails("R30 HLS2 §4.4.3.2")

    def test_segment_without_program_date_time(self):
        self.v("#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:04.000Z\n", "")
        self.fails("R32 Auth 8.4")

    def test_program_date_time_without_milliseconds(self):
        self.v("2026-01-01T00:00:04.000Z", "2026-01-01T00:00:04Z")
        self.fails("R32 HLS2 §4.4.4.6")

    def test_program_date_time_going_back(self):
        self.v("2026-01-01T00:00:04.000Z", "2026-01-01T00:00:01.000Z")
        self.fails("R32 HLS2 §4.4.4.6")

    def test_fewer_than_six_segments(self):
        self.v("#EXT-X-MEDIA-SEQUENCE:100", "#EXT-X-MEDIA-SEQUENCE:101")
        self.v("#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00.000Z\n#EXTINF:2.00000,\nvideo/100.m4s\n", "")
        self.fails("R36 Auth 8.11")

    def test_live_playlist_with_a_playlist_type(self):
        self.v("#EXT-X-MEDIA-SEQUENCE", "#EXT-X-PLAYLIST-TYPE:EVENT\n#EXT-X-MEDIA-SEQUENCE")
        self.fails("R36 HLS2 §6.2.2")

    def test_segment_without_map(self):
        self.v('#EXT-X-MAP:URI="video/init.mp4"\n', "")
        self.fails("R33 HLS2 §3.1.2")

    # --- syntax
    def test_whitespace_in_an_attribute_list(self):
        self.v("CAN-BLOCK-RELOAD=YES,", "CAN-BLOCK-RELOAD=YES, ")
        self.fails("HLS2 §4.2")

    def test_repeated_attribute(self):
        self.v("PART-TARGET=0.5", "PART-TARGET=0.5,PART-TARGET=0.5")
        self.fails("HLS2 §4.2")

    def test_header_tag_twice(self):
        self.v("#EXT-X-TARGETDURATION:2\n", "#EXT-X-TARGETDURATION:2\n#EXT-X-TARGETDURATION:2\n")
        self.fails("HLS2 §4.4.3")

    def test_carriage_return(self):
        self.v("#EXT-X-VERSION:6\n", "#EXT-X-VERSION:6\r\n")
        self.fails("HLS2 §4.1")

    # --- multivariant
    def test_no_average_bandwidth(self):
        self.mv("AVERAGE-BANDWIDTH=1800000,", "")
        self.fails("R61 Auth 9.14")

    def test_average_above_peak(self):
        self.mv("AVERAGE-BANDWIDTH=1800000", "AVERAGE-BANDWIDTH=2800000")
        self.fails("R61 HLS2 §4.4.6.2")

    def test_video_without_resolution(self):
        self.mv("RESOLUTION=1280x720,", "")
        self.fails("R61 Auth 9.2")

    def test_video_without_frame_rate(self):
        self.mv("FRAME-RATE=30.000,", "")
        self.fails("R61 Auth 9.15")

    def test_codecs_without_the_audio_groups_codec(self):
        self.mv('CODECS="avc1.64001f,mp4a.40.2"', 'CODECS="avc1.64001f"')
        self.fails("R61 Auth 9.1")

    def test_audio_group_that_does_not_exist(self):
        self.mv('AUDIO="a"', 'AUDIO="b"')
        self.fails("R62 HLS2 §4.4.6.2")

    def test_audio_rendition_without_language(self):
        self.mv('LANGUAGE="und",', "")
        self.fails("R62 Auth 8.10")

    def test_default_without_autoselect(self):
        self.mv("AUTOSELECT=YES,", "")
        self.fails("R62 HLS2 §4.4.6.1")

    def test_two_defaults_in_a_group(self):
        self.mv("#EXT-X-STREAM-INF", '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="second",'
                'LANGUAGE="en",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="2",URI="audio.m3u8"\n'
                "#EXT-X-STREAM-INF")
        self.fails("R62 HLS2 §4.4.6.1")

    def test_closed_captions_none_on_some_variants_only(self):
        self.s.files["index.m3u8"] += (
            "#EXT-X-STREAM-INF:BANDWIDTH=900000,AVERAGE-BANDWIDTH=800000,"
            'CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=1280x720,FRAME-RATE=30.000,AUDIO="a"\n'
            "video.m3u8\n")
        self.fails("HLS2 §4.4.6.2")

    def test_no_independent_segments(self):
        self.mv("#EXT-X-INDEPENDENT-SEGMENTS\n", "")
        self.fails("R35 Auth 9.11")

    # --- across renditions
    def test_server_control_differs(self):
        self.s.edit("audio.m3u8", "HOLD-BACK=6.0", "HOLD-BACK=8.0")
        self.fails("R13 HLS2 §6.2.4")

    def test_target_duration_differs(self):
        self.s.edit("audio.m3u8", "#EXT-X-TARGETDURATION:2", "#EXT-X-TARGETDURATION:3")
        self.fails("R29 HLS2 §6.2.4")

    def test_part_hold_back_below_three_times_the_largest_part_target(self):
        self.s.edit("audio.m3u8", "PART-TARGET=0.5", "PART-TARGET=0.6")
        self.fails("R10 Auth 14.3")

    def test_program_date_time_differs_between_renditions(self):
        self.s.edit("audio.m3u8", "2026-01-01T00:00:04.000Z", "2026-01-01T00:00:04.200Z")
        self.fails("R63 HLS2 §6.2.4")

    def test_independent_segments_repeated_in_a_media_playlist(self):
        self.v("#EXT-X-VERSION:6\n", "#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n")
        self.fails("R35 HLS2 §4.4.2.1")

    # --- media
    def test_init_without_an_iso6_brand(self):
        self.s.blobs["video/init.mp4"] = init_section("vide", brands=(b"isom", b"mp41"))
        self.fails("R65 HLS2 §3.1.2")

    def test_init_without_mvex(self):
        self.s.blobs["video/init.mp4"] = init_section("vide", mvex=False)
        self.fails("R65 HLS2 §3.1.2")

    def test_parameter_sets_in_band(self):
        self.s.blobs["video/init.mp4"] = init_section("vide", fmt=b"avc3")
        self.fails("R65 Auth 1.10")

    def test_codecs_not_the_ones_in_avcc(self):
        self.mv("avc1.64001f", "avc1.42e01f", 3)
        self.fails("R61 Auth 9.1")

    def test_resolution_not_the_one_in_the_sample_entry(self):
        self.s.blobs["video/init.mp4"] = init_section("vide", size=(1920, 1080))
        self.fails("R61 Auth 9.2")

    def test_independent_part_without_a_sync_sample(self):
        self.s.blobs["video/105.0.m4s"] = fragment(1, False, start=10.0)
        self.fails("R70 validator")

    def test_part_with_a_sync_sample_not_marked_independent(self):
        self.s.blobs["video/105.2.m4s"] = fragment(1, True, start=11.0)
        self.fails("R70 validator")

    def test_segment_not_starting_with_a_sync_sample(self):
        self.s.blobs["video/101.m4s"] = fragment(1, False, 2.0, start=2.0)
        self.fails("R70 Auth 7.4")

    def test_h264_above_high_profile_level_5_2(self):
        self.s.blobs["video/init.mp4"] = init_section("vide", profile=b"\x64\x00\x3c")
        self.fails("Auth 1.3b")

    def test_segment_shorter_than_its_extinf(self):
        self.s.blobs["video/102.m4s"] = fragment(1, True, 1.9, start=4.0)
        self.fails("R68 Auth 8.1")

    def test_part_longer_than_its_duration(self):
        self.s.blobs["video/104.1.m4s"] = fragment(1, False, 0.6, start=8.5)
        self.fails("R68 Auth 8.1")

    def test_peak_bit_rate_above_125_percent_of_bandwidth(self):
        # 2 s of video at 2.4 Mbit/s + audio at 128 kbit/s > 1.25 x 2 Mbit/s.
        self.s.blobs["video/103.m4s"] = fragment(1, True, 2.0, 600_000, start=6.0)
        self.fails("Auth 1.29")

    def test_frame_rate_above_60(self):
        self.mv("FRAME-RATE=30.000", "FRAME-RATE=120.000")
        self.fails("Auth 1.19")

    def test_opus_audio(self):
        self.mv("mp4a.40.2", "opus")
        self.fails("Auth 2.2")

    def test_no_i_frame_playlist(self):
        self.mv("#EXT-X-I-FRAME-STREAM-INF", "#EXT-X-COMMENT")
        self.fails("Auth 6.1")

    def test_a_single_bit_rate(self):
        self.mv("BANDWIDTH=1000000,", "BANDWIDTH=2000000,")
        self.fails("Auth 9.9")

    def test_long_window_without_delta_updates(self):
        self.v("CAN-SKIP-UNTIL=12.0,", "")
        self.v("#EXT-X-MEDIA-SEQUENCE:100", "#EXT-X-MEDIA-SEQUENCE:100\n#EXT-X-COMMENT")
        for i in range(60):
            self.v("#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00.000Z\n",
                   "#EXTINF:2.00000,\nvideo/old.m4s\n#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00.000Z\n")
        self.fails("Auth 14.4", names=["video.m3u8"])

    def test_dateranges_without_can_skip_dateranges(self):
        self.v("#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:08.000Z\n",
               "#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:08.000Z\n"
               '#EXT-X-DATERANGE:ID="ad",START-DATE="2026-01-01T00:00:08.000Z"\n')
        self.fails("Auth 14.5", names=["video.m3u8"])

    def test_audio_shorter_than_video(self):
        self.s.edit("audio.m3u8", "#EXTINF:2.00000,\naudio/101.m4s", "#EXTINF:1.80000,\naudio/101.m4s")
        self.fails("Auth 8.3")

    def test_a_part_that_does_not_continue_the_previous_one(self):
        self.s.blobs["video/105.1.m4s"] = fragment(1, False, start=10.6)
        self.fails("R68 Auth 7.3")

    def test_a_segment_that_does_not_continue_the_previous_one(self):
        self.s.blobs["video/102.m4s"] = fragment(1, True, 2.0, start=4.1)
        self.fails("R68 Auth 7.3")

    def test_a_parent_that_is_not_its_parts(self):
        self.s.blobs["video/105.m4s"] = fragment(1, True, 2.0, start=10.1)
        self.fails("R5 HLS2 §3.2")

    def test_a_live_playlist_that_ends_in_the_future(self):
        for n in ("video.m3u8", "audio.m3u8"):
            self.s.files[n] = self.s.files[n].replace("2026-01-01T00:00:", "2999-01-01T00:00:")
        self.fails("Auth 8.5")

    # --- VOD and open findings
    def test_vod_without_endlist(self):
        self.s.files["vod.m3u8"] = ("#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n"
                                    "#EXT-X-PLAYLIST-TYPE:VOD\n"
                                    '#EXT-X-MAP:URI="video/init.mp4"\n#EXTINF:2.0,\nvideo/100.m4s\n')
        self.fails("HLS2 §4.4.3.4", names=["vod.m3u8"])

    def test_an_open_finding_is_waived_only_where_listed(self):
        vp.OPEN_FINDINGS = [("R3 HLS2 §4.4.4.9", "elsewhere", "test")]
        self.v('DURATION=0.50000,URI="video/105.1', 'DURATION=0.60000,URI="video/105.1')
        self.fails("R3 HLS2 §4.4.4.9")
        vp.OPEN_FINDINGS = [("R3 HLS2 §4.4.4.9", "", "test")]
        self.assertFalse([p for p in self.s.run() if "R3 " in p])


if __name__ == "__main__":
    unittest.main()
