#!/usr/bin/env python3
"""What clients that never read their responses cost the server: 200 connections each
pipelining 200 requests for a whole segment of the demo stream and reading nothing. Prints the
server's CPU time while they connect, the bytes the kernel holds unsent for them (Send-Q of
the server's sockets, from `ss`), the server's RSS, and how many are still open after the
send timeout.

    python3 benches/slow-readers.py [--binary target/release/llhls] [--conns 200] [-- SERVER FLAGS]
    python3 benches/slow-readers.py -- --send-unsent-bytes 0     # the kernel's default buffering

A measurement, not a test: nothing is asserted."""
import argparse
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "llhls"))
    ap.add_argument("--conns", type=int, default=200)
    ap.add_argument("--wait", type=float, default=2.0, help="seconds after connecting before measuring")
    ap.add_argument("server_flags", nargs="*")
    a = ap.parse_args()
    port = free_port()
    p = subprocess.Popen(
        [a.binary, "serve", "--http", f"127.0.0.1:{port}", "--rtmp", f"127.0.0.1:{free_port()}",
         "--whip-udp", "off", "--demo", "true", "--demo-ladder", "off",
         "--demo-file", os.path.join(ROOT, "samples", "media", "demo.mp4")] + a.server_flags,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        pl = None
        for _ in range(300):
            try:
                pl = urllib.request.urlopen(f"http://127.0.0.1:{port}/live/demo/media.m3u8").read().decode()
                break
            except Exception:
                time.sleep(0.1)
        seg = next(l for l in pl.splitlines() if l.endswith(".m4s") and not l.startswith("#"))
        seg_len = len(urllib.request.urlopen(f"http://127.0.0.1:{port}/live/demo/{seg}").read())

        def cpu():
            f = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()
            return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

        def rss_mib():
            for l in open(f"/proc/{p.pid}/status"):
                if l.startswith("VmRSS:"):
                    return int(l.split()[1]) / 1024

        def send_q():
            out = subprocess.run(["ss", "-tn", "state", "established", f"( sport = :{port} )"],
                                 capture_output=True, text=True).stdout
            return [int(l.split()[1]) for l in out.splitlines()[1:] if l.split() and l.split()[1].isdigit()]

        req = (f"GET /live/demo/{seg} HTTP/1.1\r\nHost: x\r\n\r\n" * 200).encode()
        rss0, c0, t0 = rss_mib(), cpu(), time.time()
        conns = []
        for _ in range(a.conns):
            s = socket.create_connection(("127.0.0.1", port))
            s.settimeout(0.5)
            try:
                s.sendall(req)
            except OSError:
                pass
            conns.append(s)
        setup = time.time() - t0
        time.sleep(a.wait)
        c1, q, rss1 = cpu(), send_q(), rss_mib()
        print(f"flags: {' '.join(a.server_flags) or '(defaults)'}; binary: {a.binary}")
        print(f"  {a.conns} connections x 200 requests for a {seg_len} B segment, connected in {setup:.1f} s")
        print(f"  server CPU from the first connection to {a.wait:.0f} s after the last: {c1 - c0:.2f} s")
        print(f"  unsent bytes in the kernel (Send-Q): {sum(q) / 2**20:.1f} MiB over {len(q)} sockets, "
              f"{sum(q) / max(1, len(q)) / 1024:.0f} KiB each")
        print(f"  server RSS: {rss0:.1f} -> {rss1:.1f} MiB")
        # Held until the send timeout (default 30 s) resets them?
        deadline = time.time() + 40
        while time.time() < deadline and send_q():
            time.sleep(1)
        left = len(send_q())
        c2 = cpu()
        print(f"  sockets still open {time.time() - t0:.0f} s after the first connected: {left}")
        print(f"  server CPU while they sat there (from {a.wait:.0f} s after the last connected until then): {c2 - c1:.2f} s")
    finally:
        p.kill()


if __name__ == "__main__":
    main()
