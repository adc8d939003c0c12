"""Fuzzing image decoding: mutated JPEG, PNG and WebP files (bit flips, truncations, spliced
headers, overwritten runs), from a fixed seed. Each must end in a FecsimError or an image: never
another exception. Then compare() on a sample of those that decode."""
import io
import time
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from fecsim import ExpressionComparer
from fecsim.errors import FecsimError
from fecsim.images import load_image

pytestmark = pytest.mark.slow

CASES = 6000          # 2,000 per format: about 2 s
COMPARED = 40         # of those that decode, through face detection and the model


def originals(astronaut) -> dict:
    """Small files, so that thousands decode in seconds: her face, 96 px."""
    face = Image.fromarray(astronaut).crop((140, 20, 310, 190)).resize((96, 96))
    out = {}
    for fmt in ("JPEG", "PNG", "WEBP"):
        buffer = io.BytesIO()
        face.save(buffer, fmt)
        out[fmt] = buffer.getvalue()
    return out


def mutate(data: bytes, others: list, rng) -> bytes:
    data = bytearray(data)
    kind = rng.integers(4)
    if kind == 0:      # flip a few bits, more often in the header
        for _ in range(rng.integers(1, 9)):
            i = rng.integers(min(len(data), 64)) if rng.random() < 0.5 else rng.integers(len(data))
            data[i] ^= 1 << int(rng.integers(8))
    elif kind == 1:    # cut short
        data = data[:rng.integers(len(data))]
    elif kind == 2:    # another format's header on this body
        other = others[rng.integers(len(others))]
        cut = int(rng.integers(4, 48))
        data = bytearray(other[:cut]) + data[cut:]
    else:              # a run of random bytes, or a run repeated
        i, n = int(rng.integers(len(data))), int(rng.integers(1, 200))
        if rng.random() < 0.5:
            data[i:i + n] = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        else:
            data[i:i] = data[i:i + n] * int(rng.integers(2, 20))
    return bytes(data)


@pytest.fixture(scope="module")
def fuzzed(astronaut):
    rng = np.random.default_rng(20240611)
    files = originals(astronaut)
    cases = [mutate(files[fmt], list(files.values()), rng)
             for _ in range(CASES // len(files)) for fmt in files]
    outcomes, decoded, escaped = Counter(), [], []
    started = time.monotonic()
    for i, data in enumerate(cases):
        try:
            load_image(data)
            outcomes["image"] += 1
            decoded.append(data)
        except FecsimError:
            outcomes["error"] += 1
        except Exception as exc:  # noqa: BLE001 - the finding this test exists to report
            escaped.append((i, type(exc).__name__, str(exc)[:100]))
    return cases, outcomes, decoded, escaped, time.monotonic() - started


def test_every_mutated_file_decodes_or_is_an_image_error(fuzzed):
    cases, outcomes, decoded, escaped, seconds = fuzzed
    assert len(cases) >= 2000
    assert not escaped, escaped[:10]
    assert outcomes["image"] + outcomes["error"] == len(cases)
    assert outcomes["image"] > 100 and outcomes["error"] > 100   # both paths exercised
    print(f"{len(cases)} mutated files: {dict(outcomes)} in {seconds:.1f} s")


def test_compare_on_mutated_files_that_decode(fuzzed, random_checkpoint, astronaut):
    _, _, decoded, _, _ = fuzzed
    comparer = ExpressionComparer.load(random_checkpoint, device="cpu")
    reference = originals(astronaut)["PNG"]
    rng = np.random.default_rng(7)
    outcomes = Counter()
    for i in rng.choice(len(decoded), size=min(COMPARED, len(decoded)), replace=False):
        try:
            result = comparer.compare(decoded[i], reference)
            assert 0 <= result.probability <= 1
            outcomes["answer"] += 1
        except FecsimError:
            outcomes["error"] += 1
    assert sum(outcomes.values()) == min(COMPARED, len(decoded))
    assert outcomes["answer"] > 0
