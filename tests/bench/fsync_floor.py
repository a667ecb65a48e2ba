#!/usr/bin/env python3
"""The fdatasync floor of a directory's disk: what kadsip's commit log pays
before every 200 to a REGISTER, back to back and with the pauses between
writes that a lightly loaded registrar sees (a virtual disk that went idle
is slower to flush).

    python3 tests/bench/fsync_floor.py [DIR]     # default: ./kadsip-data or .
"""
import os
import sys
import tempfile
import time


def floor(d, gap, n=600):
    fd, path = tempfile.mkstemp(prefix="fsync-floor-", dir=d)
    try:
        # Pre-zeroed, as an overwrite needs no metadata journal commit.
        os.write(fd, b"\0" * (1 << 20))
        os.fsync(fd)
        os.lseek(fd, 0, 0)
        ts = []
        for _ in range(n):
            t = time.perf_counter()
            os.write(fd, b"x" * 300)
            os.fdatasync(fd)
            ts.append(time.perf_counter() - t)
            if gap:
                time.sleep(gap)
        ts.sort()
        return ts[n // 2] * 1e6, ts[int(n * 0.9)] * 1e6
    finally:
        os.close(fd)
        os.unlink(path)


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else ("kadsip-data" if os.path.isdir("kadsip-data") else ".")
    print(f"fdatasync of a 300-byte write in {os.path.abspath(d)}")
    for label, gap in (("back to back", 0), ("every 1 ms", 0.001), ("every 5 ms", 0.005)):
        p50, p90 = floor(d, gap)
        print(f"  {label:<13} p50 {p50:6.0f} us  p90 {p90:6.0f} us")


if __name__ == "__main__":
    main()
