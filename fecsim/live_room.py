"""A room of live mirrors: many webcams scored at once against their own reference faces.

Each session (one page's live camera) has at most one frame in work at a time, so a page that
sends faster than the others gets no more than its share. Faces are looked for on the comparer's
detection threads, side by side with the other sessions' frames; the only step done one at a time
is the model call, which embeds the crops of every session waiting at that moment in one batch.

Up to `capacity` sessions are scored. A later one is told the room is busy, how many people are
live and its place in line, and is let in when someone leaves. A session that sent no frame for
GONE_SECONDS has left (its camera was stopped or its tab put to sleep); one that found no face for
IDLE_SECONDS is closed, so that a forgotten tab holds no place. Its page stops the camera (a closed
session's frames are not scored even if it does not), and a camera started again joins the line
anew.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from .inference import ExpressionComparer
from .live import find_face

CAPACITY = 12             # sessions scored at once: 12 got >= 5.8 frames/s each on 2 busy cores
                          # (bench_live.py), before the web server's own work on each frame
MAX_BATCH = 8             # crops embedded in one model call
HISTORY = 60              # results kept for the score line
IDLE_SECONDS = 120        # no face for this long: the stream is closed
GONE_SECONDS = 5          # no frame for this long: the session has left the room
RESTART_SECONDS = 1       # a closed session's frames stop this long: its camera was restarted
FORGET_SECONDS = 1800     # no frame and no new reference for this long: the session is dropped


@dataclass(frozen=True)
class LiveReading:
    """What one session's page shows after a frame."""
    state: str                    # "scored", "no face", "busy" (waiting in line), "closed",
                                  # "no reference" (none chosen yet)
    probability: float | None = None   # P(same expression as the reference) of this frame's face
    box: tuple | None = None      # the face in this frame
    frame: Image.Image | None = None   # the frame the probability belongs to
    best: float | None = None     # the best probability since the reference or "next student"
    history: tuple = ()           # the last frames' probabilities (HISTORY), None where no face
    frames_scored: int = 0        # frames with a face scored since then (all, not only HISTORY)
    live: int = 0                 # sessions live in the room now, this one included
    place: int | None = None      # "busy": place in line, 1 = next


@dataclass(eq=False)   # a session is itself, whatever its fields hold
class _Session:
    history: deque                    # the last frames' probabilities, None where no face
    reference: torch.Tensor | None = None
    track: tuple | None = None        # the last face's box: where the next frame looks first
    best: float | None = None
    scored: int = 0
    round: int = 0                    # +1 at each reset: a frame in work from before is dropped
    joined: float = 0.0               # when it last started streaming: its place in line
    last_frame: float = float("-inf")
    last_face: float = 0.0
    last_seen: float = 0.0            # its last frame or reference
    in_work: bool = False
    closed: bool = False

    def reset(self):
        self.track, self.best, self.scored = None, None, 0
        self.history.clear()
        self.round += 1


class LiveRoom:
    def __init__(self, comparer: ExpressionComparer, capacity: int = CAPACITY,
                 max_batch: int = MAX_BATCH, idle_seconds: float = IDLE_SECONDS,
                 gone_seconds: float = GONE_SECONDS, history: int = HISTORY,
                 clock=time.monotonic):
        self.comparer, self.capacity, self.history = comparer, capacity, history
        self.idle_seconds, self.gone_seconds, self.clock = idle_seconds, gone_seconds, clock
        self.encoder = BatchedScorer(comparer, max_batch)
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()   # guards the sessions; never held while a model runs

    def set_reference(self, key: str, reference_z: torch.Tensor | None):
        """A new reference face (its z) for one session: its best score and line start again."""
        with self._lock:
            session = self._sessions.setdefault(key, _Session(deque(maxlen=self.history)))
            session.reference, session.last_seen = reference_z, self.clock()
            session.reset()

    def next_student(self, key: str):
        """Same reference, a new person: the best score, the line and the count start again."""
        with self._lock:
            if key in self._sessions:
                self._sessions[key].reset()

    def leave(self, key: str):
        with self._lock:
            self._sessions.pop(key, None)

    def live(self) -> int:
        with self._lock:
            return len(self._live(self.clock()))

    def score(self, key: str, frame) -> LiveReading | None:
        """One frame (an RGB array or PIL image) of one session. None when there is nothing new
        to show: the session's previous frame is still in work, or it was reset meanwhile."""
        now = self.clock()
        with self._lock:
            self._forget_old(now)
            session = self._sessions.get(key)
            if session is None or session.reference is None:
                return LiveReading("no reference")
            if session.in_work:
                return None
            pause = RESTART_SECONDS if session.closed else self.gone_seconds
            if now - session.last_frame > pause:   # a camera (re)started
                session.joined, session.last_face, session.closed = now, now, False
            session.last_frame = session.last_seen = now
            if now - session.last_face > self.idle_seconds:
                session.closed = True
            live = self._live(now)
            place = live.index(session) + 1 - self.capacity if session in live else None
            if session.closed:
                return self._reading(session, "closed", None, None, None, len(live))
            if place is not None and place > 0:
                session.last_face = now   # not looked at while waiting: not idle either
                return self._reading(session, "busy", None, None, None, len(live), place)
            session.in_work = True
            reference, track, round_ = session.reference, session.track, session.round
        try:
            image = frame if isinstance(frame, Image.Image) else Image.fromarray(np.asarray(frame))
            image = image.convert("RGB")
            probability, box = self._probability(image, reference, track)
        except BaseException:
            with self._lock:
                session.in_work = False
            raise
        with self._lock:
            session.in_work = False
            if session.round != round_:   # reset while the frame was in work: not this round's
                return None
            session.track = box
            session.history.append(probability)
            if probability is not None:
                session.best = max(session.best or 0.0, probability)
                session.scored += 1
                session.last_face = now
            return self._reading(session, "no face" if box is None else "scored", probability,
                                 box, image, len(self._live(now)))

    def _probability(self, image: Image.Image, reference, track):
        comparer = self.comparer
        # On the detection threads: one torch thread each, which for MTCNN's many small ops is
        # far faster than the callers' threads fighting over the cores.
        found = comparer.detect_pool.submit(find_face, comparer, image, track).result()
        if found is None:
            return None, None
        box, eyes = found
        crop = comparer.cropper.crop(image, box, eyes)
        return self.encoder.probability(crop, reference), tuple(round(v, 1) for v in box)

    def _live(self, now: float) -> list[_Session]:
        """Sessions streaming now, in the order they started: the first `capacity` are scored."""
        return sorted((s for s in self._sessions.values() if s.reference is not None
                       and not s.closed and now - s.last_frame <= self.gone_seconds),
                      key=lambda s: s.joined)

    def _forget_old(self, now: float):
        for key in [k for k, s in self._sessions.items() if now - s.last_seen > FORGET_SECONDS]:
            del self._sessions[key]

    @staticmethod
    def _reading(session: _Session, state, probability, box, frame, live, place=None):
        return LiveReading(state, probability, box, frame, session.best, tuple(session.history),
                           session.scored, live, place)


class BatchedScorer:
    """P(same expression) of crops against their sessions' references, one model call at a time:
    whoever gets the model next embeds every crop waiting by then (up to max_batch) in one batch,
    first come first served, so no caller waits for more than the calls already running."""

    def __init__(self, comparer: ExpressionComparer, max_batch: int = MAX_BATCH):
        self.comparer, self.max_batch = comparer, max_batch
        self.batch_sizes: list[int] = []   # of every call made (for benchmarks)
        self._model = threading.Lock()
        self._waiting: list[_Job] = []
        self._waiting_lock = threading.Lock()

    def probability(self, crop: Image.Image, reference_z: torch.Tensor) -> float:
        job = _Job(crop, reference_z)
        with self._waiting_lock:
            self._waiting.append(job)
        while not job.done.is_set():
            with self._model:
                if job.done.is_set():   # embedded in another caller's batch meanwhile
                    break
                with self._waiting_lock:
                    batch = self._waiting[:self.max_batch]
                    del self._waiting[:self.max_batch]
                self._run(batch)
        if job.error is not None:
            raise job.error
        return job.result

    @torch.no_grad()
    def _run(self, batch: list[_Job]):
        self.batch_sizes.append(len(batch))
        try:
            z = self.comparer.features([job.crop for job in batch])
            references = torch.cat([job.reference for job in batch])
            for job, p in zip(batch, self.comparer.pair_probabilities(references, z)):
                job.result = float(p)
        except Exception as exc:  # noqa: BLE001 (each caller raises it, not only the runner)
            for job in batch:
                job.error = exc
        for job in batch:
            job.done.set()


@dataclass
class _Job:
    crop: Image.Image
    reference: torch.Tensor
    result: float | None = None
    error: Exception | None = None
    done: threading.Event = field(default_factory=threading.Event)
