"""Serving under load: N gradio_client clients each send M /compare requests at once.

    .venv/bin/python benchmarks/bench_app.py                       # the shipped model
    .venv/bin/python benchmarks/bench_app.py --checkpoint X --clients 10 --requests 5

Starts the app on a free port of 127.0.0.1 (its real queue settings), checks every answer equals
the first one, and prints requests/s and p50/p90 latency as one JSON line (also written to --out).
Photos: the first example pair in examples/ (two 350x350 photos, see examples/README.md).
"""
import argparse
import json
import os
import socket
import statistics
import tempfile
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
ROOT = Path(__file__).resolve().parent.parent

from gradio_client import Client, handle_file

from fecsim import checkpoint, shipped_examples
from fecsim.web import CONCURRENCY, build_demo

PAIR = shipped_examples.pairs()[0].photos


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(checkpoint.SHIPPED))
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--requests", type=int, default=5, help="per client, all submitted at once")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY,
                        help="model calls run at once (the app's default: %(default)s)")
    parser.add_argument("--out", default="", help="also write the JSON figures here")
    args = parser.parse_args(argv)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = build_demo(args.checkpoint, flag_dir=tempfile.mkdtemp(), concurrency=args.concurrency)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port,
                ssr_mode=False, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    files = [handle_file(str(p)) for p in PAIR]
    Client(url, verbose=False, analytics_enabled=False).predict(
        *files, api_name="/compare")                         # warm-up: MTCNN and model loaded

    latencies, answers, errors = [], [], []
    lock = threading.Lock()
    start_line = threading.Barrier(args.clients)

    def one_client():
        try:
            client = Client(url, verbose=False, analytics_enabled=False)
            start_line.wait()
            sent = time.perf_counter()
            jobs = [client.submit(*files, api_name="/compare") for _ in range(args.requests)]
            for job in jobs:
                p = job.result(timeout=600)[-1]["probability"]   # the details
                with lock:
                    latencies.append(time.perf_counter() - sent)
                    answers.append(p)
        except Exception as exc:  # noqa: BLE001 - counted and reported
            with lock:
                errors.append(repr(exc))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=one_client) for _ in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    demo.close()

    total = args.clients * args.requests
    figures = {
        "checkpoint": Path(args.checkpoint).name, "clients": args.clients,
        "requests_per_client": args.requests, "completed": len(answers), "errors": len(errors),
        "all_answers_equal": len(set(round(p, 4) for p in answers)) <= 1,
        "concurrency_limit": args.concurrency, "cpu_count": os.cpu_count(),
        "requests_per_s": round(len(answers) / wall, 2),
        "latency_p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "latency_p90_s": round(percentile(latencies, 90), 3) if latencies else None,
        "wall_s": round(wall, 2),
    }
    print(json.dumps(figures))
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
    if errors:
        print("\n".join(errors[:5]), file=sys.stderr)
    return 0 if len(answers) == total and figures["all_answers_equal"] else 1


if __name__ == "__main__":
    sys.exit(main())
