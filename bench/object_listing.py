"""What a Tansu fetch costs the embedded object store as a partition's history grows.

    .venv/bin/python bench/object_listing.py [--counts 100 500 1000 2000 4000] [--runs 9]

Tansu 0.6's ``s3://`` engine answers every fetch that has something to return by listing *all* of the partition's
batch objects (``clusters/<c>/topics/<t>/partitions/<p>/records/``) before reading the ones at or after the
fetch offset. This starts a ``weed mini`` as the stack does, writes batch objects of 9 KB (three 100 ms live
chunks each) under one partition's prefix, and times a full paginated listing at each count: the median of
``--runs`` listings, with the machine. streamscribe.stack.retention trims the audio lanes so that the count
stays small.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stack_run import machine
from streamscribe.stack.seaweed import BUCKET, Seaweed

PREFIX = "clusters/bench/topics/audio.chunks.high/partitions/0000000000/records/"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=int, nargs="+", default=[100, 500, 1000, 2000, 4000])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ss-listing-"))
    store = Seaweed(root, "bench", "bench-secret-key")
    proc = store.start(root / "weed.log")
    try:
        if not store.wait_ready(90):
            raise SystemExit((root / "weed.log").read_text()[-2000:])
        client = store.client()
        written = 0
        print(f"{date.today().isoformat()}, {machine()}")
        print("| batch objects in the partition | one listing (median) |")
        for count in sorted(args.counts):
            while written < count:
                client.put_object(Bucket=BUCKET, Key=f"{PREFIX}{written * 3:020d}.batch", Body=b"x" * 9000)
                written += 1
            times = []
            for _ in range(args.runs):
                started = time.perf_counter()
                for _page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=PREFIX):
                    pass
                times.append(time.perf_counter() - started)
            print(f"| {count} | {statistics.median(times) * 1000:.0f} ms |", flush=True)
        client.close()
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    main()
