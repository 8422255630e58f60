"""Peak memory of `synthgen generate` against the number of images: generation streams, so it stays flat.

Runs `synthgen generate` in a child process for each --counts value (same pattern, seed and options)
and reports the child's peak resident memory (ru_maxrss from wait4) and its wall time. The target of
the reliability issue: peak memory flat within +-50 MB from 100 to 10 000 images.

Run:  python bench/generate_memory.py [--counts 100,1000,10000] [--pattern patterns/p02/pattern.txt] [--workers 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def peak_rss_mb(cmd: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of a child process run to completion."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}")
    return usage.ru_maxrss / 1024, time.perf_counter() - t0  # Linux: ru_maxrss in kB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--counts", default="100,1000,10000")
    ap.add_argument("--pattern", type=Path, default=REPO / "patterns" / "p02" / "pattern.txt")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    synthgen = str(Path(sys.executable).parent / "synthgen")
    rows = []
    with tempfile.TemporaryDirectory(prefix="genmem-") as tmp:
        for n in (int(c) for c in args.counts.split(",")):
            out = Path(tmp) / f"n{n}"
            cmd = [synthgen, "generate", str(args.pattern), "--out", str(out), "--count", str(n), "--seed", "1",
                   "--workers", str(args.workers)]  # fmt: skip
            mb, secs = peak_rss_mb(cmd)
            rows.append((n, mb, secs))
            shutil.rmtree(out, ignore_errors=True)
    print(f"command: python bench/generate_memory.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"pattern {args.pattern.relative_to(REPO) if args.pattern.is_relative_to(REPO) else args.pattern}, plain mode, {args.workers} worker(s)\n")
    print("| images | peak RSS MB | wall s |")
    print("|---:|---:|---:|")
    for n, mb, secs in rows:
        print(f"| {n} | {mb:.0f} | {secs:.0f} |")
    spread = max(r[1] for r in rows) - min(r[1] for r in rows)
    print(f"\npeak memory spread over the counts: {spread:.0f} MB (target <= 50 MB: {'met' if spread <= 50 else 'NOT met'})")


if __name__ == "__main__":
    main()
