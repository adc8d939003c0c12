"""Live mirror mode: scored frames per second per session, with N sessions live at once.

    python benchmarks/bench_live.py [--checkpoint P] [--sessions 1 2 4] [--seconds 10]
                                    [--every 0.1] [--max-batch 8]

Each session is a thread that does what one page's camera stream does: send a frame, wait for
its score (the room's work and the HTML the page gets), and send the next one `--every` seconds
after the last was sent, or at once when it is late (the page sends every 0.1 s and never has two
frames in flight; --every 0: as fast as the room serves). Frames are 640x480, the astronaut photo
(public domain, shipped in scikit-image) moved and scaled a little from frame to frame as a face
in front of a webcam moves, each session starting at another point of the path; the reference is
the mirrored photo, embedded once. Prints one line per N: frames/s of the slowest session and on
average, per-frame p50/p90, the mean batch the model ran, and the load average around the run.
Target on 2 CPU cores: 4 sessions each get >= 3 frames/s.
"""
import argparse
import json
import os
import threading
import time

import numpy as np
from PIL import Image

from fecsim import ExpressionComparer
from fecsim.web.live_html import live_panel
from fecsim.live_room import LiveRoom


def moving_face_frames(n: int, size=(640, 480)) -> list[np.ndarray]:
    """n webcam-sized frames of the astronaut's face drifting across and nearer/further away."""
    from skimage import data
    photo = Image.fromarray(data.astronaut())
    frames = []
    for i in range(n):
        t = i / max(n - 1, 1)
        scale = 0.75 + 0.25 * np.sin(2 * np.pi * t)            # 0.5x .. 1.0x of 512 px
        face = photo.resize((round(512 * scale), round(512 * scale)))
        canvas = Image.new("RGB", size, (90, 90, 90))
        x = round((size[0] - face.width) * (0.5 + 0.5 * np.sin(4 * np.pi * t)))
        y = round((size[1] - face.height) * 0.5 + 20 * np.cos(4 * np.pi * t))
        canvas.paste(face, (x, y))
        frames.append(np.asarray(canvas))
    return frames


def run_sessions(comparer, reference_z, frames, sessions: int, seconds: float, every: float,
                 max_batch: int) -> dict:
    room = LiveRoom(comparer, capacity=max(sessions, 1), max_batch=max_batch)
    keys = [f"session-{i}" for i in range(sessions)]
    for key in keys:
        room.set_reference(key, reference_z)
    times = {key: [] for key in keys}
    faces = {key: 0 for key in keys}
    start_line = threading.Barrier(sessions)

    def stream(i, key):
        start_line.wait()
        start = next_send = time.perf_counter()
        n = len(frames) * i // sessions
        while time.perf_counter() - start < seconds:
            time.sleep(max(0.0, next_send - time.perf_counter()))
            sent = time.perf_counter()
            next_send = sent + every
            reading = room.score(key, frames[n % len(frames)])
            live_panel(reading, comparer.threshold)
            times[key].append(time.perf_counter() - sent)
            faces[key] += reading.probability is not None
            n += 1

    load_before = os.getloadavg()[0]
    threads = [threading.Thread(target=stream, args=(i, key)) for i, key in enumerate(keys)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    per_session = [len(times[key]) / seconds for key in keys]
    every_time = np.concatenate([times[key] for key in keys])
    batches = room.encoder.batch_sizes
    return {"sessions": sessions, "every_s": every, "seconds": seconds,
            "min_session_frames_per_s": round(min(per_session), 1),
            "mean_session_frames_per_s": round(float(np.mean(per_session)), 1),
            "total_frames_per_s": round(sum(per_session), 1),
            "frame_p50_ms": round(1000 * float(np.percentile(every_time, 50)), 1),
            "frame_p90_ms": round(1000 * float(np.percentile(every_time, 90)), 1),
            "faces_found_share": round(sum(faces.values()) / len(every_time), 3),
            "mean_batch": round(float(np.mean(batches)), 2) if batches else None,
            "load_avg_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "cpu_count": os.cpu_count()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint")
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--every", type=float, default=0.1,
                        help="seconds between a session's frames (the page's pace); 0: no pause")
    parser.add_argument("--max-batch", type=int, default=8,
                        help="crops embedded in one model call (1: one at a time)")
    args = parser.parse_args(argv)
    comparer = ExpressionComparer.load(args.checkpoint)
    from skimage import data
    reference = Image.fromarray(data.astronaut()).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    reference_z = comparer.features([comparer.face(reference)])
    frames = moving_face_frames(120)
    run_sessions(comparer, reference_z, frames, 2, 2, 0, args.max_batch)   # warm-up
    for sessions in args.sessions:
        print(json.dumps(run_sessions(comparer, reference_z, frames, sessions, args.seconds,
                                      args.every, args.max_batch)), flush=True)


if __name__ == "__main__":
    main()
