"""Times Python's json.load and pycocotools' COCO() on a COCO annotation file (the comparison
printed by benchmarks/bench_coco_load --python EXE). Peak RSS from resource.getrusage, measured in
a fresh process per loader so one does not inflate the other.

    python tools/bench_coco_load.py FILE
"""
import json
import resource
import subprocess
import sys
import time


def run(kind, path):
    t0 = time.perf_counter()
    c0 = time.process_time()
    if kind == "json":
        with open(path, "rb") as f:
            json.load(f)
    else:
        from pycocotools.coco import COCO
        import contextlib, io
        with contextlib.redirect_stdout(io.StringIO()):
            COCO(path)
    dt = time.perf_counter() - t0
    ct = time.process_time() - c0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"python {kind}: {dt:.2f} s wall, {ct:.2f} s CPU, peak RSS {rss:.0f} MB")


def main():
    if len(sys.argv) == 3:
        run(sys.argv[1], sys.argv[2])
        return
    path = sys.argv[1]
    subprocess.run([sys.executable, __file__, "json", path], check=False)
    try:
        import pycocotools  # noqa: F401
    except ImportError:
        print("python pycocotools: not installed for", sys.executable)
        return
    subprocess.run([sys.executable, __file__, "pycocotools", path], check=False)


if __name__ == "__main__":
    main()
