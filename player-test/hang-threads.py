#!/usr/bin/env python3
"""Hangs the threads of process PID named NAME (e.g. an ABR rung's encoder, `rung-360p`, and the
x264 threads it started, which inherit its name) until this script gets SIGTERM: an encoder
that stops making progress, while every other thread of the process runs on.

    python3 player-test/hang-threads.py PID NAME

ptrace stops each thread on its own (PTRACE_SEIZE, then PTRACE_INTERRUPT), which a signal
cannot do (SIGSTOP stops the whole process). When this script exits, the kernel detaches and the
threads go on. Prints one JSON line, {"stopped": [TID, ...]}, once they are stopped; exits 1 when
ptrace is refused (it needs CAP_SYS_PTRACE or the same user without Yama's restrictions) and 2
when no thread has that name."""
import ctypes
import json
import os
import signal
import sys
import time

PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207


def main():
    pid, name = int(sys.argv[1]), sys.argv[2]
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.restype = ctypes.c_long
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    stopped = []
    for tid in sorted(os.listdir(f"/proc/{pid}/task"), key=int):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if f.read().strip() != name:
                    continue
        except OSError:
            continue
        t = int(tid)
        for request in (PTRACE_SEIZE, PTRACE_INTERRUPT):
            if libc.ptrace(request, t, None, None) != 0:
                err = ctypes.get_errno()
                print(f"hang-threads: ptrace on thread {t} of {pid}: {os.strerror(err)}", file=sys.stderr)
                sys.exit(1)
        stopped.append(t)
    if not stopped:
        print(f"hang-threads: process {pid} has no thread named {name!r}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps({"stopped": stopped}), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
