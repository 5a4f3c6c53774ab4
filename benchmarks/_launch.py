"""Tiny launcher: run a command, then write its exact rusage (peak RSS etc.) as JSON to a file.

Usage: python _launch.py RESULT.json -- CMD ARGS...

Why a launcher: on Linux a child's ``ru_maxrss`` also counts the memory of the process image it
replaced at exec (the forked copy of its parent). A big benchmark parent would thus inflate every
child's peak. This launcher is small, so the peak it reads for its own child is the child's own.
"""

import json
import os
import signal
import subprocess
import sys
import time


def main() -> int:
    result_path = sys.argv[1]
    cmd = sys.argv[sys.argv.index("--") + 1 :]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    # Forward SIGTERM so the launcher can be stopped cleanly.
    signal.signal(signal.SIGTERM, lambda *_: proc.kill())
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status)
    with open(result_path, "w") as fh:
        json.dump(
            {
                "rc": rc,
                "wall_s": wall,
                "peak_rss_mib": usage.ru_maxrss / 1024.0,
                "user_s": usage.ru_utime,
                "sys_s": usage.ru_stime,
            },
            fh,
        )
    return rc if rc >= 0 else 128 - rc


if __name__ == "__main__":
    raise SystemExit(main())
