#!/usr/bin/env python3
"""How much later than the source rendition each transcoded rung of the ABR ladder publishes
the same part (issue 11: "extra latency of a transcoded rung over the source rung").

    python3 benches/rung-delay.py [--llhls target/release/llhls] [--ladder 480p,360p,240p]
                                  [--size 1280x720] [--secs 30]

A testsrc2 H.264 file (30 fps, keyframe every second, no B-frames) + AAC is published in real
time (`ffmpeg -re -stream_loop -1 -c copy`) over RTMP to `llhls serve --ladder RUNGS`. For every
part the source publishes, one blocking playlist request per rendition asks for that part
(`?_HLS_msn=M&_HLS_part=P`, all sent together before it exists); each answers when its
rendition lists the part. A rung's extra latency is its answer's time minus the source's. The
rungs share the source's media sequence numbers and part indices (aligned ladder), so the same
(M, P) names the same media in every rendition. A viewer of a rung is behind live by the
source's glass-to-glass latency plus this.
"""
import argparse
import http.client
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ap = argparse.ArgumentParser()
ap.add_argument('--llhls', default='target/release/llhls')
ap.add_argument('--ladder', default='480p,360p,240p')
ap.add_argument('--size', default='1280x720')
ap.add_argument('--secs', type=int, default=30)
args = ap.parse_args()


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def get(port, path, timeout=10):
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
    try:
        c.request('GET', path)
        r = c.getresponse()
        return r.status, r.read().decode('utf-8', 'replace')
    finally:
        c.close()


work = tempfile.mkdtemp(prefix='rung-delay-')
src = os.path.join(work, 'in.mp4')
subprocess.run(['ffmpeg', '-v', 'error', '-y', '-f', 'lavfi', '-i', f'testsrc2=size={args.size}:rate=30:duration=20',
                '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000:duration=20', '-c:v', 'libx264',
                '-preset', 'veryfast', '-g', '30', '-keyint_min', '30', '-sc_threshold', '0', '-bf', '0',
                '-pix_fmt', 'yuv420p', '-b:v', '2500k', '-c:a', 'aac', src], check=True)
http_port, rtmp_port = free_port(), free_port()
log = open(os.path.join(work, 'server.log'), 'w')
server = subprocess.Popen([args.llhls, 'serve', '--http', f'127.0.0.1:{http_port}', '--rtmp', f'127.0.0.1:{rtmp_port}',
                           '--demo', 'false', '--whip-udp', 'off', '--ladder', args.ladder], stdout=log, stderr=log)
pub = None
try:
    for _ in range(100):
        try:
            get(http_port, '/healthz', 1)
            break
        except OSError:
            time.sleep(0.1)
    pub = subprocess.Popen(['ffmpeg', '-v', 'error', '-re', '-stream_loop', '-1', '-i', src, '-c', 'copy', '-f', 'flv',
                            f'rtmp://127.0.0.1:{rtmp_port}/live/r'], stdin=subprocess.DEVNULL)
    deadline = time.time() + 20
    mv = ''
    while time.time() < deadline:
        try:
            status, mv = get(http_port, '/live/r/index.m3u8', 2)
            if status == 200 and mv.count('#EXT-X-STREAM-INF') > len(args.ladder.split(',')):
                break
        except OSError:
            pass
        time.sleep(0.2)
    # Video renditions: the URI after each EXT-X-STREAM-INF, named by its RESOLUTION.
    lines = mv.splitlines()
    renditions = []
    for i, line in enumerate(lines):
        if line.startswith('#EXT-X-STREAM-INF'):
            res = re.search(r'RESOLUTION=\d+x(\d+)', line)
            renditions.append((f'{res.group(1)}p' if res else lines[i + 1], lines[i + 1]))
    renditions.sort(key=lambda r: -int(re.sub(r'\D', '', r[0]) or 0))
    if len(renditions) <= len(args.ladder.split(',')):
        print(f'rung-delay: not every rung is in the multivariant playlist after 20 s (a rung that cannot keep '
              f'up is withdrawn; see below)', flush=True)
    if len(renditions) < 2:
        sys.exit(f'rung-delay: no ladder in the multivariant playlist:\n{mv}')
    source_uri = renditions[0][1]
    print(f'renditions: {", ".join(f"{n} ({u})" for n, u in renditions)}; source {renditions[0][0]}', flush=True)

    def last_part(text):
        msn = int(re.search(r'#EXT-X-MEDIA-SEQUENCE:(\d+)', text).group(1))
        segs = sum(1 for l in text.splitlines() if l.startswith('#EXTINF'))
        tail = text.split('#EXTINF')[-1]
        parts = tail.count('#EXT-X-PART:')
        return msn + segs, parts  # the open segment's MSN and its parts so far

    _, text = get(http_port, f'/live/r/{source_uri}')
    msn, part = last_part(text)
    extra = {n: [] for n, _ in renditions[1:]}
    missing = {n: 0 for n, _ in renditions[1:]}
    end = time.time() + args.secs
    n_parts = 0
    while time.time() < end:
        # Ask every rendition for the next part at once; record when each answers.
        answers = {}

        def ask(name, uri, m=msn, p=part):
            try:
                status, body = get(http_port, f'/live/r/{uri}?_HLS_msn={m}&_HLS_part={p}')
                answers[name] = (time.monotonic(), status, body)
            except OSError:
                answers[name] = (time.monotonic(), None, '')

        threads = [threading.Thread(target=ask, args=(n, u)) for n, u in renditions]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        t_src, st, body = answers[renditions[0][0]]
        if st != 200:
            sys.exit(f'rung-delay: the source answered {st} for msn {msn} part {part}')
        for n, _ in renditions[1:]:
            t, s, _ = answers[n]
            if s == 200:
                extra[n].append((t - t_src) * 1000)
            else:
                missing[n] += 1
        n_parts += 1
        # The next part: the one after the source's newest (the answer may list a new segment).
        m2, p2 = last_part(body)
        msn, part = (m2, p2) if (m2, p2) > (msn, part) else (msn, part + 1)
    print(f'{n_parts} parts over {args.secs} s (release build: {args.llhls})')
    print('| rung | extra latency over the source, p50 | p95 | max | parts answered | not answered |')
    print('|---|---|---|---|---|---|')
    for n, xs in extra.items():
        xs.sort()
        if not xs:
            print(f'| {n} | - | - | - | 0 | {missing[n]} |')
            continue
        p95 = xs[min(len(xs) - 1, int(len(xs) * 0.95))]
        print(f'| {n} | {statistics.median(xs):.0f} ms | {p95:.0f} ms | {xs[-1]:.0f} ms | {len(xs)} | {missing[n]} |')
finally:
    log.flush()
    for line in open(os.path.join(work, 'server.log'), errors='replace'):
        if 'withdrawn' in line or ' ERROR ' in line:
            print('server: ' + line.rstrip()[:300])
    if pub:
        pub.kill()
    server.terminate()
    try:
        server.wait(5)
    except subprocess.TimeoutExpired:
        server.kill()
    shutil.rmtree(work, ignore_errors=True)
