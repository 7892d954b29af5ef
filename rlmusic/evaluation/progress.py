"""Progress on stderr for the slow steps of an evaluation: a line every few seconds, a bar.

* :func:`stage`: a step with no count of its own (sampling, scoring, rendering) says when it
  starts, says it is still working every ``every`` seconds, and says how long it took.
* :func:`critic_bar`: a tqdm bar over a critic's training steps, fed by the discriminator's
  own step lines (``log_every``), which it keeps off the log.

Both write to stderr only: the log and the results are the same with or without them, and
``enabled=False`` silences them (tests, a sweep's many jobs).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

DISCRIMINATOR_LOGGER = "rlmusic.critics.discriminator"
STEP_MESSAGE = "discriminator step"  # its training's "discriminator step %d: loss %.4f" line


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@contextmanager
def stage(
    what: str, every: float = 5.0, enabled: bool = True, prefix: str = "compare"
) -> Iterator[None]:
    """``[prefix] what ...`` now, ``[prefix] what: N s so far`` every ``every`` seconds while
    it runs, ``[prefix] what: done in N s`` when it ends without an error (stderr)."""
    if not enabled:
        yield
        return
    started = time.perf_counter()
    _say(f"[{prefix}] {what} ...")
    done = threading.Event()

    def beat() -> None:
        while not done.wait(every):
            _say(f"[{prefix}] {what}: {time.perf_counter() - started:.0f} s so far")

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:  # an error says why itself: no "done" line for a step that failed
        done.set()
        thread.join()
    _say(f"[{prefix}] {what}: done in {time.perf_counter() - started:.1f} s")


class _StepFilter(logging.Filter):
    """Moves a bar to each discriminator step line's step (its first argument) and drops the
    line; every other record passes."""

    def __init__(self, bar) -> None:
        super().__init__()
        self.bar = bar

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(STEP_MESSAGE) or not record.args:
            return True
        step = int(record.args[0])  # type: ignore[index]
        self.bar.update(step - self.bar.n)
        return False


@contextmanager
def critic_bar(what: str, steps: int, enabled: bool = True) -> Iterator[object | None]:
    """A tqdm bar (stderr) over ``steps`` critic training steps while the block runs; the
    discriminator's step lines (train it with ``log_every`` > 0) move it and stay off the log.
    Yields the bar (None when disabled)."""
    if not enabled or steps <= 0:
        yield None
        return
    from tqdm import tqdm

    logger = logging.getLogger(DISCRIMINATOR_LOGGER)
    bar = tqdm(total=steps, desc=what, unit="step", file=sys.stderr, mininterval=1.0)
    step_filter = _StepFilter(bar)
    logger.addFilter(step_filter)
    # the lines must reach the filter: a logger above INFO would never make the records
    level = logger.level
    if not logger.isEnabledFor(logging.INFO):
        logger.setLevel(logging.INFO)
    try:
        yield bar
    finally:
        logger.removeFilter(step_filter)
        logger.setLevel(level)
        bar.close()
