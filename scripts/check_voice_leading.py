"""Cross-check the voice-leading counting against music21, and print real Bach's rates.

    python scripts/check_voice_leading.py             # both, as Markdown (docs/results/voice_leading.md)
    python scripts/check_voice_leading.py --ranges    # each voice's range (train split)
    python scripts/check_voice_leading.py --limit 20  # a quick look
    python scripts/check_voice_leading.py --jsb Jsb16thSeparated.json  # the issue's data

**The cross-check.** Every chorale music21 ships that :func:`rlmusic.data.chorales.read_chorale`
accepts is read onto the 16th grid; :func:`rlmusic.rewards.harmony.parallels` counts its
similar-motion parallel fifths and octaves/unisons. music21's
``voiceLeading.VoiceLeadingQuartet`` then judges every moving voice-pair transition whose
interval is a fifth or an octave/unison (mod 12) at both frames: no other transition can be
one of music21's parallels (``parallelFifth``, ``parallelOctave``, ``parallelUnison`` all need
those intervals at both ends), so this is all of them. We count a transition where music21
says ``parallelFifth() and similarMotion()`` (resp. ``parallelUnisonOrOctave()``) and report
where it disagrees with ours, and what music21 adds through contrary ("antiparallel") motion.
Notes are built from MIDI numbers (music21 spells them with its default accidentals).

**The rates.** :func:`rlmusic.rewards.harmony_statistics.harmony_stats` on each split of
``data=chorales`` (whole chorales), with two other denominators for the parallels: transitions
where *both* voices move (the issue's figures use this one), and on-the-beat frames.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

import numpy as np

from rlmusic.data.chorale_encoding import ChoraleEncoding
from rlmusic.rewards import harmony
from rlmusic.rewards.harmony_statistics import HarmonyStatistic, harmony_stats

ENC = ChoraleEncoding()
RANGE_SHARE = 0.005  # each voice's range leaves out its lowest and highest 0.5% of onsets


def data_cfg():
    from hydra import compose, initialize_config_module

    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        return compose("prepare_data", overrides=["data=chorales"]).data


def music21_verdicts(pitch: np.ndarray) -> Counter:
    """music21's verdicts on the candidate transitions of one piece (1, 4, n), beside ours."""
    from music21 import note, voiceLeading

    fifths, octaves, moving = harmony.parallels(pitch)
    upper, lower = pitch[0, harmony.UPPER], pitch[0, harmony.LOWER]
    interval = np.abs(upper - lower) % 12
    before = np.concatenate([np.full((6, 1), -1), interval[:, :-1]], axis=1)
    out: Counter = Counter()
    for pair, t in zip(*np.nonzero(moving[0] & np.isin(interval, (0, 7)) & (interval == before))):
        quartet = voiceLeading.VoiceLeadingQuartet(
            note.Note(midi=int(upper[pair, t - 1])),
            note.Note(midi=int(upper[pair, t])),
            note.Note(midi=int(lower[pair, t - 1])),
            note.Note(midi=int(lower[pair, t])),
        )
        ours5, ours8 = bool(fifths[0, pair, t]), bool(octaves[0, pair, t])
        m21_5, m21_8 = quartet.parallelFifth(), quartet.parallelUnisonOrOctave()
        similar = quartet.similarMotion()
        out["candidates"] += 1
        out["ours fifths"] += ours5
        out["ours octaves"] += ours8
        out["music21 similar fifths"] += m21_5 and similar
        out["music21 similar octaves"] += m21_8 and similar
        out["music21 contrary fifths"] += m21_5 and not similar
        out["music21 contrary octaves"] += m21_8 and not similar
        out["fifths disagree"] += ours5 != (m21_5 and similar)
        out["octaves disagree"] += ours8 != (m21_8 and similar)
        if ours5 != (m21_5 and similar) or ours8 != (m21_8 and similar):
            out[f"disagree: {quartet.vIntervals[0].name}->{quartet.vIntervals[1].name}"] += 1
    return out


def cross_check(limit: int | None) -> str:
    from rlmusic.data.chorales import chorale_paths, read_chorale
    from rlmusic.data.readers import RejectedInput

    started = time.perf_counter()
    totals: Counter = Counter()
    pieces = per_piece_equal = 0
    for path in chorale_paths()[:limit]:
        try:
            tune = read_chorale(path, ENC)
        except RejectedInput:
            continue
        pitch, _ = harmony.frames(tune.tokens, ENC)
        found = music21_verdicts(pitch)
        totals.update(found)
        pieces += 1
        per_piece_equal += (
            found["ours fifths"] == found["music21 similar fifths"]
            and found["ours octaves"] == found["music21 similar octaves"]
        )
    lines = [
        f"music21 cross-check: {pieces} chorales read by read_chorale "
        f"({time.perf_counter() - started:.0f} s); counts per chorale identical in "
        f"{per_piece_equal} of {pieces}",
        "",
        "| count | ours | music21 |",
        "|---|---|---|",
        f"| parallel fifths, similar motion | {totals['ours fifths']} | "
        f"{totals['music21 similar fifths']} |",
        f"| parallel octaves and unisons, similar motion | {totals['ours octaves']} | "
        f"{totals['music21 similar octaves']} |",
        f"| fifths in contrary motion (music21's parallelFifth() adds them) | 0 | "
        f"{totals['music21 contrary fifths']} |",
        f"| octaves/unisons in contrary motion | 0 | {totals['music21 contrary octaves']} |",
        f"| candidate transitions judged | {totals['candidates']} | |",
        "",
    ]
    disagreements = {k: v for k, v in totals.items() if k.startswith("disagree: ")}
    if disagreements:
        lines.append("Transitions where the two disagree (music21's interval names):")
        lines += [
            f"- {k.removeprefix('disagree: ')}: {v}" for k, v in sorted(disagreements.items())
        ]
        lines.append("")
    return "\n".join(lines)


def split_rates(limit: int | None) -> str:
    from rlmusic.data.prepare import prepare_corpus

    corpus = prepare_corpus(data_cfg(), ENC, progress=False)
    s = HarmonyStatistic
    lines = [
        "| split | chorales | fifths /1,000 | octaves /1,000 | fifths /1,000 both moving | "
        "octaves /1,000 both moving | fifths /1,000 on the beat | crossing | spacing | "
        "out of range | unprepared strong dissonance | final V-I | all four sounding | "
        "onsets /voice /bar | pitch changes /voice /bar |",
        "|" + "---|" * 15,
    ]
    opening = ENC.tokens_for(ENC.melody_length)  # what compare's heldout column shows
    sets = {split: list(corpus.tunes(split))[:limit] for split in ("train", "valid", "test")}
    sets[f"test, {ENC.melody_length}-step openings"] = [
        t[:opening] for t in sets["test"] if len(t) >= opening
    ]
    for split, tunes in sets.items():
        table = harmony_stats(tunes, ENC).table()
        both = beat = beat_moving = both_fifths = both_octaves = changes = bars = 0
        for tokens in tunes:
            pitch, _ = harmony.frames(tokens, ENC)
            fifths, octaves, _ = harmony.parallels(pitch)
            both_now = _both_moving(pitch)
            both += both_now.sum()
            both_fifths += fifths.sum()
            both_octaves += octaves.sum()
            on_beat = pitch[..., :: ENC.steps_per_quarter]
            beat_fifths, _, beat_moves = harmony.parallels(on_beat)
            beat += beat_fifths.sum()
            beat_moving += beat_moves.sum()
            changed = (pitch[..., 1:] != pitch[..., :-1]) & (pitch[..., 1:] >= 0)
            changes += changed.sum() + (pitch[..., 0] >= 0).sum()
            bars += pitch.shape[-1] / ENC.steps_per_bar
        cells = [
            f"{1000 * table[s.PARALLEL_FIFTHS]:.2f}",
            f"{1000 * table[s.PARALLEL_OCTAVES]:.2f}",
            f"{1000 * both_fifths / both:.2f}",
            f"{1000 * both_octaves / both:.2f}",
            f"{1000 * beat / beat_moving:.2f}",
            f"{100 * table[s.VOICE_CROSSING]:.2f}%",
            f"{100 * table[s.SPACING]:.2f}%",
            f"{100 * table[s.OUT_OF_RANGE]:.2f}%",
            f"{100 * table[s.UNPREPARED_DISSONANCE]:.1f}%",
            f"{100 * table[s.FINAL_CADENCE]:.0f}%",
            f"{100 * table[s.FULL_VOICING]:.1f}%",
            f"{table[s.ONSETS_PER_VOICE_PER_BAR]:.2f}",
            f"{changes / (4 * bars):.2f}",
        ]
        lines.append(f"| {split} | {len(tunes)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _both_moving(pitch: np.ndarray) -> np.ndarray:
    upper, lower = pitch[:, harmony.UPPER], pitch[:, harmony.LOWER]
    a0, a1, b0, b1 = upper[..., :-1], upper[..., 1:], lower[..., :-1], lower[..., 1:]
    sounding = (a0 >= 0) & (a1 >= 0) & (b0 >= 0) & (b1 >= 0)
    return sounding & (a1 != a0) & (b1 != b0)


def train_ranges(share: float = RANGE_SHARE) -> str:
    """Each voice's range: the ``share`` and ``1 - share`` quantiles of its onsets' pitches in
    the train split (a few chorales' parts sit an octave off, so the extremes say little)."""
    from rlmusic.data.prepare import prepare_corpus

    corpus = prepare_corpus(data_cfg(), ENC, progress=False)
    struck: list[list[np.ndarray]] = [[] for _ in range(4)]
    for tokens in corpus.tunes("train"):
        pitch, onset = harmony.frames(tokens, ENC)
        for v in range(4):
            struck[v].append(pitch[0, v][onset[0, v]])
    ranges = []
    for v in range(4):
        low, high = np.quantile(np.concatenate(struck[v]), [share, 1 - share], method="nearest")
        ranges.append((int(low), int(high)))
    return "VOICE_RANGES = " + repr(tuple(ranges))


def jsb_rates(path: str) -> str:
    """Parallels on czhuang/JSB-Chorales-dataset's ``Jsb16thSeparated.json`` (pitches per voice
    and 16th frame, -1 silent), per 1,000 transitions with at least one / both voices moving."""
    import json

    lines = [
        "| JSB split | fifths | octaves | fifths, both moving | octaves, both moving |",
        "|---|---|---|---|---|",
    ]
    for split, pieces in json.loads(open(path).read()).items():
        fifths = octaves = moving = both = 0
        for frames in pieces:
            pitch = np.asarray(frames, dtype=np.int64).T[None]
            f, o, m = harmony.parallels(pitch)
            fifths, octaves, moving = fifths + f.sum(), octaves + o.sum(), moving + m.sum()
            both += _both_moving(pitch).sum()
        lines.append(
            f"| {split} ({len(pieces)}) | {1000 * fifths / moving:.2f} | "
            f"{1000 * octaves / moving:.2f} | {1000 * fifths / both:.2f} | "
            f"{1000 * octaves / both:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="at most this many chorales")
    parser.add_argument("--ranges", action="store_true", help="print the train split's ranges")
    parser.add_argument("--jsb", help="czhuang/JSB-Chorales-dataset's Jsb16thSeparated.json")
    args = parser.parse_args(argv)
    if args.jsb:
        print(jsb_rates(args.jsb))
        return
    if args.ranges:
        print(train_ranges())
        return
    print(cross_check(args.limit))
    print(split_rates(args.limit))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
