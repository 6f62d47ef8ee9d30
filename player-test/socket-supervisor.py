#!/usr/bin/env python3
"""What systemd does with scripts/llhls.socket and llhls.service, for tests without systemd.

Binds llhls's HTTP and RTMP listening sockets once and keeps them open, starts the command with
them as file descriptors 3 and 4 (the sd_listen_fds protocol: LISTEN_FDS=2, LISTEN_PID,
LISTEN_FDNAMES=http:rtmp), and starts it again --restart-sec seconds after each exit
(Restart=always, RestartSec=). While the command is down, connections wait in the sockets'
backlog instead of being refused.

    socket-supervisor.py --http 127.0.0.1:8080 --rtmp 127.0.0.1:1935 [--restart-sec 1] \\
        -- target/debug/llhls serve --http 127.0.0.1:8080 --rtmp 127.0.0.1:1935 ...

Prints "started PID UNIX-MS" for each start (flushed), so a test can kill that process. The
command dies with this process (PR_SET_PDEATHSIG); SIGTERM stops the command, then exits.
"""
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time


def listen(addr):
    host, port = addr.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port)))
    s.listen(1024)
    return s


def main():
    args = sys.argv[1:]
    if "--" not in args:
        sys.exit(__doc__)
    opts, cmd = args[: args.index("--")], args[args.index("--") + 1:]
    opt = lambda name, default=None: opts[opts.index(name) + 1] if name in opts else default
    http, rtmp = listen(opt("--http")), listen(opt("--rtmp"))
    restart_sec = float(opt("--restart-sec", "1"))
    # Parked on high descriptors, moved to 3 and 4 in each child.
    os.dup2(http.fileno(), 100)
    os.dup2(rtmp.fileno(), 101)
    libc = ctypes.CDLL(None, use_errno=True)

    def in_child():
        os.dup2(100, 3)
        os.dup2(101, 4)
        os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="2", LISTEN_FDNAMES="http:rtmp")
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    child = None
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True
        if child and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping:
        child = subprocess.Popen(cmd, pass_fds=(3, 4, 100, 101), preexec_fn=in_child)
        print(f"started {child.pid} {int(time.time() * 1000)}", flush=True)
        child.wait()
        if not stopping:
            time.sleep(restart_sec)


if __name__ == "__main__":
    main()
