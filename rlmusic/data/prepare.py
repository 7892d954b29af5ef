"""Prepare a corpus: parse tunes in worker processes (each time-bounded), encode, dedupe, cache.

``prepare_corpus(data_cfg, encoding)`` is the one entry point; each music21 collection (or a
MIDI folder) is cached on its own as ``<cache_dir>/<source>-<encoding key>-<input key>.npz``,
so ``data=all`` reuses ``data=essen`` and any change of encoding, reader or input files
re-prepares. The split is recomputed from ``data.split_seed`` on every load (a cheap hash;
:mod:`rlmusic.data.split`): a fixed number, not the run's seed.

``data=chorales`` goes through the same workers, time bound and cache, one item per chorale
file read by :func:`rlmusic.data.chorales.read_chorale` with the chorale encoding
(:func:`check_encoding` refuses the other domain's encoding before any parse).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rlmusic.data.corpus import Corpus, CorpusError
from rlmusic.data.encoding import Note
from rlmusic.data.encodings import Encoding
from rlmusic.data.melody import (
    cap_long_notes,
    encode_line,
    longest_note,
    melody_line,
    shorten_long_rests,
)
from rlmusic.data.readers import (
    MIDI_SUFFIXES,
    MelodyWarning,
    RejectedInput,
    parse_abc,
    parse_file,
)
from rlmusic.data.sources import (
    ALL_COLLECTIONS,
    CHORALES,
    MUSIC21_COLLECTIONS,
    SOURCES,
    WorkItem,
    chorale_items,
    collection_items,
    encoding_mismatch,
    midi_dir_items,
)
from rlmusic.data.split import HeldOutSplit

log = logging.getLogger(__name__)

# Bump when parsing or encoding logic changes: every cache is then re-prepared.
# 9: an ABC tune whose header declares its voices reads its first voice that has notes
READER_VERSION = 9
# The same for data=chorales (rlmusic.data.chorales); its own number, so a change to the
# chorale reader never re-prepares the melody caches.
CHORALE_READER_VERSION = 3  # 2: per-voice vocabulary blocks (fe14c8a); 3: the pickup bar dropped


@dataclass(frozen=True)
class ItemResult:
    """What became of one work item: tokens and metadata, or a rejection reason."""

    item: WorkItem
    tokens: np.ndarray | None = None
    key: str = ""
    transposition: int = 0
    notes: int = 0
    folded_notes: int = 0
    reason: str = ""
    detail: str = ""
    warnings: tuple[str, ...] = ()  # harmless defects repaired on the way (MelodyWarning texts)


class _ParseTimeout(BaseException):
    """Raised by the alarm; a BaseException so music21's broad ``except Exception`` can't eat it."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise _ParseTimeout()


@contextmanager
def time_bounded(timeout_s: float) -> Iterator[None]:
    """Interrupt the block after ``timeout_s`` with :class:`_ParseTimeout` (SIGALRM, POSIX).

    The one time bound of every third-party parse: corpus preparation and the single-file
    loaders both run their parses under it (:func:`process_item`). It is armed only in the
    main thread (signals are delivered there); elsewhere the block runs unbounded. An
    enclosing timer (a caller's own bound) gets its remaining time back afterwards.
    """
    armed = bool(
        timeout_s
        and timeout_s > 0
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not armed:
        yield
        return
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    outer = signal.getitimer(signal.ITIMER_REAL)[0]
    signal.setitimer(signal.ITIMER_REAL, min(timeout_s, outer) if outer > 0 else timeout_s)
    started = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer > 0:
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 1e-3))


def check_durations(line: list[Note], encoding: Encoding, max_note_bars: float) -> None:
    """Reject absurd note lengths (``C99999`` is legal ABC) before they reach training windows.

    Runs on the grid line, before any token exists: ``C9999999999`` would otherwise allocate
    (and fill, uninterruptibly) gigabytes of tokens. Long rests are shortened before this
    (:func:`rlmusic.data.melody.shorten_long_rests`): a voice resting for bars is music.
    """
    longest = longest_note(line)
    if longest > max_note_bars * encoding.steps_per_bar:
        raise RejectedInput(
            "absurd duration", f"a note of {longest} steps (> {max_note_bars:g} bars)"
        )


def _import_readers(item: WorkItem) -> None:
    """Import the item's parser before the time bound: an import cut short by the alarm can
    leave half-initialised modules behind, and the import time is no property of the input."""
    if item.abc_text is None and Path(item.path or "").suffix.lower() in MIDI_SUFFIXES:
        import pretty_midi  # noqa: F401
    else:
        import music21.converter  # noqa: F401


def _parse_notes(item: WorkItem, encoding: Encoding, max_note_bars: float) -> list[Note]:
    """One item's notes as its grid line: absurd notes refused, long rests shortened (inside
    the time bound)."""
    if item.abc_text is not None:
        notes = parse_abc(item.abc_text, where=item.describe())
    else:
        notes = parse_file(item.path)
    if not notes:
        raise RejectedInput("no notes")
    if item.abc_text is None and Path(item.path or "").suffix.lower() in MIDI_SUFFIXES:
        # a MIDI note lasting minutes is a late note-off, not music: cut it, don't reject
        notes, cut = cap_long_notes(
            notes, max_note_bars * encoding.beats_per_bar, encoding.beats_per_bar
        )
        if cut:
            longest = max(n.end - n.start for n in cut)
            warnings.warn(
                MelodyWarning(
                    f"{item.describe()}: cut {len(cut)} note(s) longer than {max_note_bars:g} "
                    f"bars (the longest lasted {longest:g} quarter notes) at the melody's end"
                ),
                stacklevel=2,
            )
    line = melody_line(notes, encoding)
    check_durations(line, encoding, max_note_bars)
    max_steps = int(max_note_bars * encoding.steps_per_bar)
    line, shortened = shorten_long_rests(line, max_steps)
    if shortened:
        bars = ", ".join(f"{steps / encoding.steps_per_bar:g}" for steps in shortened)
        warnings.warn(
            MelodyWarning(
                f"{item.describe()}: shortened {len(shortened)} rest(s) longer than "
                f"{max_note_bars:g} bars to {max_note_bars:g} bars (they lasted {bars} bars)"
            ),
            stacklevel=2,
        )
    return line


def process_item(
    item: WorkItem,
    encoding: Encoding,
    min_notes: int,
    timeout_s: float,
    max_note_bars: float = 8.0,
) -> ItemResult:
    """Parse and encode one tune; never raises for bad input (the reason is in the result).

    Repairs of harmless defects (:class:`MelodyWarning`) are collected in the result's
    ``warnings`` rather than shown, so each caller reports them its own way. Like the time
    bound, this is meant for the main thread (``warnings.catch_warnings`` is process-wide).
    """
    _import_readers(item)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MelodyWarning)
        fields = _outcome(item, encoding, min_notes, timeout_s, max_note_bars)
    ours = []
    for w in caught:  # after the catch: shown warnings must not land in ``caught`` again
        if issubclass(w.category, MelodyWarning):
            ours.append(str(w.message))
        else:
            warnings.warn_explicit(
                w.message, w.category, w.filename, w.lineno, registry=_SHOWN_WARNINGS
            )
    return ItemResult(item, warnings=tuple(ours), **fields)


_SHOWN_WARNINGS: dict = {}  # other libraries' warnings: shown once per text, as without the catch


def _outcome(
    item: WorkItem,
    encoding: Encoding,
    min_notes: int,
    timeout_s: float,
    max_note_bars: float,
) -> dict[str, Any]:
    """The ItemResult fields of one item: its tokens and metadata, or the rejection."""
    if item.source == CHORALES:
        return _chorale_outcome(item, encoding, min_notes, timeout_s)
    melody, rejected = read_bounded(
        lambda: encode_line(_parse_notes(item, encoding, max_note_bars), encoding), timeout_s
    )
    if rejected:
        return rejected
    if melody.notes < min_notes:
        return {"reason": "too short", "detail": f"{melody.notes} notes < {min_notes}"}
    return {
        "tokens": melody.tokens,
        "key": str(melody.key),
        "transposition": melody.transposition,
        "notes": melody.notes,
        "folded_notes": melody.folded_notes,
    }


def read_bounded(read: Callable[[], Any], timeout_s: float) -> tuple[Any, dict[str, str]]:
    """``(read(), {})`` within ``timeout_s``, or ``(None, rejection)``: the reason and detail
    of a timeout, a refusal or a reader bug (which must not end the whole preparation)."""
    try:
        with time_bounded(timeout_s):
            return read(), {}
    except _ParseTimeout:
        return None, {"reason": "timeout", "detail": f"took over {timeout_s:g} s"}
    except RejectedInput as exc:
        return None, {"reason": exc.reason, "detail": exc.detail}
    except Exception as exc:
        return None, {"reason": "parse error", "detail": f"{type(exc).__name__}: {exc}"[:200]}


def _chorale_outcome(
    item: WorkItem, encoding: Encoding, min_notes: int, timeout_s: float
) -> dict[str, Any]:
    """The ItemResult fields of one chorale (:func:`rlmusic.data.chorales.read_chorale`)."""
    from rlmusic.data.chorales import read_chorale

    tune, rejected = read_bounded(lambda: read_chorale(item.path, encoding), timeout_s)
    if rejected:
        return rejected
    if tune.notes < min_notes:
        return {"reason": "too short", "detail": f"{tune.notes} notes < {min_notes}"}
    if tune.merged_notes:
        warnings.warn(
            MelodyWarning(
                f"{item.describe()}: merged {tune.merged_notes} note(s) shorter than the grid "
                "into the 16th they start in"
            ),
            stacklevel=2,
        )
    return {
        "tokens": tune.tokens,
        "key": tune.key,
        "transposition": tune.transposition,
        "notes": tune.notes,
        "folded_notes": 0,  # a chorale is transposed whole or refused, never folded
    }


def _process_packed(args: tuple) -> tuple[int, ItemResult]:
    index, item, encoding, min_notes, timeout_s = args
    return index, process_item(item, encoding, min_notes, timeout_s)


def resolve_workers(workers: int | str | None) -> int:
    if workers in (None, "auto"):
        return (
            len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count() or 1
        )
    workers = int(workers)
    if workers < 1:
        raise CorpusError(f"data.workers must be >= 1 or 'auto', got {workers}")
    return workers


def parse_items(
    items: list[WorkItem],
    encoding: Encoding,
    min_notes: int,
    timeout_s: float,
    workers: int,
    progress: bool = True,
) -> list[ItemResult]:
    """Process items on ``workers`` processes; results come back in the items' order."""
    from tqdm import tqdm

    packed = [(i, item, encoding, min_notes, timeout_s) for i, item in enumerate(items)]
    results: list[ItemResult | None] = [None] * len(items)
    bar = tqdm(total=len(items), desc="parsing tunes", unit="tune", disable=not progress or None)
    if workers == 1 or len(items) < 32:
        for args in packed:
            index, result = _process_packed(args)
            results[index] = result
            bar.update()
    else:
        import multiprocessing as mp
        import sys

        # forked workers flush the stdio buffers they inherit when they exit: empty them first,
        # or buffered log lines come out twice
        sys.stdout.flush()
        sys.stderr.flush()
        # fork: workers inherit the imported music21 instead of re-importing it (~1 s each)
        method = "fork" if "fork" in mp.get_all_start_methods() else None
        with mp.get_context(method).Pool(workers, maxtasksperchild=2000) as pool:
            for index, result in pool.imap_unordered(_process_packed, packed, chunksize=8):
                results[index] = result
                bar.update()
    bar.close()
    return [r for r in results if r is not None]


# ---- caching -------------------------------------------------------------------------------
def _input_key(source: str, data_cfg: Mapping[str, Any], items_hint: Iterable[str]) -> str:
    import music21

    blob = {
        "reader": READER_VERSION,
        "music21": music21.__version__,
        "source": source,
        "min_notes": int(data_cfg.get("min_notes", 8)),
        "limit": data_cfg.get("limit"),
        "inputs": list(items_hint),
    }
    if source == CHORALES:
        blob["chorale_reader"] = CHORALE_READER_VERSION
    return hashlib.sha1(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:10]


def _midi_dir_fingerprint(items: list[WorkItem]) -> list[str]:
    out = []
    for path in dict.fromkeys(item.path for item in items):  # an ABC file gives many items
        stat = Path(path).stat()
        out.append(f"{Path(path).resolve()}:{stat.st_size}:{stat.st_mtime_ns}")
    return out


def _results_to_corpus(results: list[ItemResult], encoding: Encoding) -> Corpus:
    kept = [r for r in results if r.tokens is not None]
    rejected = [
        (r.item.tune_id, f"{r.reason}: {r.detail}" if r.detail else r.reason)
        for r in results
        if r.tokens is None
    ]
    metadata = {
        "source": [r.item.source for r in kept],
        "tune_id": [r.item.tune_id for r in kept],
        "title": [r.item.title for r in kept],
        "key": [r.key for r in kept],
        "transposition": [r.transposition for r in kept],
        "notes": [r.notes for r in kept],
        "folded_notes": [r.folded_notes for r in kept],
    }
    return Corpus.from_tunes(
        [r.tokens for r in kept], encoding, metadata=metadata, rejected=rejected
    )


def _prepare_source(
    source: str, data_cfg: Mapping[str, Any], encoding: Encoding, progress: bool
) -> Corpus:
    """One collection or MIDI folder, from its cache when the cache is current."""
    if source == "midi_dir":
        if not data_cfg.get("path"):
            raise CorpusError("data=midi_dir needs data.path=/folder/with/midi")
        items = midi_dir_items(data_cfg["path"])
        hint = _midi_dir_fingerprint(items)
    elif source == CHORALES:
        items = chorale_items()
        hint = [item.tune_id for item in items]
    else:
        items = collection_items(source)
        hint = [item.tune_id for item in items]
    limit = data_cfg.get("limit")
    if limit is not None:
        items = items[: int(limit)]
    cache_dir = Path(str(data_cfg.get("cache_dir") or Path.home() / ".cache" / "rlmusic"))
    path = cache_dir / f"{source}-{encoding.cache_key()}-{_input_key(source, data_cfg, hint)}.npz"
    if path.exists():
        try:
            corpus = Corpus.load(path)
            log.info("%s: loaded %d tunes from cache %s", source, len(corpus), path)
            return corpus
        except CorpusError as exc:  # a damaged cache is rebuilt, not trusted
            log.warning("%s; re-preparing", exc)
    started = time.perf_counter()
    results = parse_items(
        items,
        encoding,
        min_notes=int(data_cfg.get("min_notes", 8)),
        timeout_s=float(data_cfg.get("timeout_s", 20)),
        workers=resolve_workers(data_cfg.get("workers", "auto")),
        progress=progress,
    )
    corpus = _results_to_corpus(results, encoding)
    for result in results:
        for warning in result.warnings:
            log.warning("%s", warning)
    for name, reason in corpus.rejected:
        log.info("rejected %s (%s)", name, reason)
    log.info(
        "%s: parsed %d inputs in %.1f s: %d kept, %d rejected",
        source,
        len(items),
        time.perf_counter() - started,
        len(corpus),
        len(corpus.rejected),
    )
    corpus.save(path)
    return corpus


def merge_corpora(parts: list[Corpus], encoding: Encoding) -> Corpus:
    """Concatenate corpora; a tune whose tokens repeat an earlier one is rejected as a duplicate."""
    tokens: list[np.ndarray] = []
    metadata: dict[str, list] = {}
    rejected: list[tuple[str, str]] = []
    seen: dict[bytes, str] = {}
    for part in parts:
        rejected += part.rejected
        for i, tune in enumerate(part.tokens):
            tune_id = str(part.metadata["tune_id"][i])
            digest = hashlib.blake2b(tune.tobytes(), digest_size=16).digest()
            if digest in seen:
                rejected.append((tune_id, f"duplicate: same melody as {seen[digest]}"))
                continue
            seen[digest] = tune_id
            tokens.append(tune)
            for column, values in part.metadata.items():
                metadata.setdefault(column, []).append(values[i].item())
    return Corpus.from_tunes(tokens, encoding, metadata=metadata, rejected=rejected)


def check_encoding(source: str, encoding: Any) -> None:
    """Refuse a corpus read with the other domain's encoding, before any parsing.

    Raises:
        CorpusError: one line naming the source, the encoding and the fix.
    """
    why = encoding_mismatch(source, getattr(encoding, "kind", "melody"))
    if why:
        raise CorpusError(why)


def prepare_corpus(
    data_cfg: Mapping[str, Any], encoding: Encoding, progress: bool = True
) -> Corpus:
    """Prepare (or load from cache) the corpus a ``data`` config names, split by its
    ``split_seed`` (:class:`rlmusic.data.split.HeldOutSplit`).

    Raises:
        CorpusError: unknown source, a missing folder, fractions that leave no train split, or
            no usable tune at all.
        ConfigError: the config sets ``data.seed`` (renamed ``data.split_seed``).
    """
    split = HeldOutSplit.from_cfg(data_cfg)  # before any parsing: a bad split fails at once
    source = str(data_cfg.get("source", "all"))
    if source not in SOURCES:
        raise CorpusError(f"unknown data.source {source!r}; known: {', '.join(SOURCES)}")
    check_encoding(source, encoding)
    sources = list(ALL_COLLECTIONS) if source == "all" else [source]
    merged = merge_corpora(
        [_prepare_source(s, data_cfg, encoding, progress) for s in sources], encoding
    )
    if len(merged) == 0:
        where = (
            data_cfg.get("path")
            if source == "midi_dir"
            else MUSIC21_COLLECTIONS.get(source, (f"music21's {source}",))[0]
        )
        reasons = sorted({reason.split(":")[0] for _, reason in merged.rejected})
        raise CorpusError(
            f"no usable tune in {where} ({len(merged.rejected)} inputs rejected: {', '.join(reasons) or 'none found'})"
        )
    merged.split = split.assign(merged.metadata["tune_id"])
    return merged
