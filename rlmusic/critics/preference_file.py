"""Pairwise preference files: a JSON array or JSON Lines of ``{pair_id, sample_a, sample_b,
preferred}`` records, ``preferred`` one of ``"a"``, ``"b"``, ``"tie"``. Extra fields are ignored.

A sample is an id in ``samples_dir`` (``"a_003"`` -> ``samples_dir/a_003.mid`` or ``.midi``)
or a MIDI path (absolute, else relative to ``samples_dir`` and then to the file's folder).

:func:`load_preferences` is strict by default: one bad record rejects the file, and the error
lists every bad record by index (and line, for JSON Lines) with its reason. ``skip_bad=True``
keeps the good records and warns (:class:`PreferenceFileWarning`) once per dropped record.

>>> import json, pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "prefs.jsonl"
>>> _ = path.write_text(json.dumps({"pair_id": 1, "sample_a": "x.mid", "sample_b": "y.mid",
...                                 "preferred": "b", "rater": "me"}))
>>> [(p.pair_id, p.winner.name) for p in load_preferences(path)]
[('1', 'y.mid')]
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlmusic.errors import UserError

FIELDS = ("pair_id", "sample_a", "sample_b", "preferred")
VERDICTS = ("a", "b", "tie")
MIDI_SUFFIXES = (".mid", ".midi")


class PreferenceFileError(UserError, ValueError):
    """A preference file was rejected; the message names the file and every bad record.

    Attributes:
        problems: ``(record index, reason)`` for every bad record (empty for file-level errors).
    """

    def __init__(self, message: str, problems: list[tuple[int, str]] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])


class PreferenceFileWarning(UserWarning):
    """A record dropped by ``load_preferences(..., skip_bad=True)``."""


@dataclass(frozen=True)
class Preference:
    """One judged pair; ``index`` is the record's position in the file (0-based)."""

    pair_id: str
    sample_a: Path
    sample_b: Path
    preferred: str  # "a" | "b" | "tie"
    index: int

    @property
    def winner(self) -> Path | None:
        """The preferred sample (None for a tie)."""
        return {"a": self.sample_a, "b": self.sample_b}.get(self.preferred)


def _json_type(value: Any) -> str:
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "array"}
    return "null" if value is None else names.get(type(value), "object")


def _read_records(path: Path) -> list[tuple[int, Any, int | None, str | None]]:
    """``(index, record, line, json_error)`` per record; a broken JSON array raises."""
    try:
        text = path.read_bytes().decode("utf-8-sig")  # -sig: a byte-order mark is accepted
    except OSError as exc:
        raise PreferenceFileError(f"{path}: cannot read the preference file ({exc})") from None
    except UnicodeDecodeError as exc:
        raise PreferenceFileError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise PreferenceFileError(f"{path}: empty preference file (no records)")
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PreferenceFileError(
                f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from None
        return [(i, record, None, None) for i, record in enumerate(data)]
    records = []  # JSON Lines: one record per non-blank line; a broken line is a bad record
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            records.append((len(records), json.loads(line), lineno, None))
        except json.JSONDecodeError as exc:
            error = f"invalid JSON at line {lineno}, column {exc.colno}: {exc.msg}"
            records.append((len(records), None, lineno, error))
    return records


def _field_problems(record: Any) -> list[str]:
    if not isinstance(record, dict):
        return [f"not a JSON object (got {_json_type(record)})"]
    problems = [f"missing field {name!r}" for name in FIELDS if name not in record]
    pair_id = record.get("pair_id")
    if "pair_id" in record and (isinstance(pair_id, bool) or not isinstance(pair_id, (str, int))):
        problems.append(f"pair_id must be a string or an integer, got {_json_type(pair_id)}")
    for name in ("sample_a", "sample_b"):
        value = record.get(name)
        if name in record and not (isinstance(value, str) and value.strip()):
            got = "an empty string" if isinstance(value, str) else _json_type(value)
            problems.append(f"{name} must be a non-empty string, got {got}")
    verdict = record.get("preferred")
    if "preferred" in record:
        if not isinstance(verdict, str):
            problems.append(f"preferred must be a string, got {_json_type(verdict)}")
        elif verdict not in VERDICTS:
            problems.append(f"preferred must be 'a', 'b' or 'tie', got {verdict!r}")
    if not problems and record["sample_a"] == record["sample_b"]:
        problems.append("sample_a and sample_b are the same sample")
    return problems


def _resolve(sample: str, samples_dir: Path | None, base: Path) -> tuple[Path, bool]:
    """The sample's file and whether it exists: ids get ``.mid`` / ``.midi`` appended."""
    given = Path(sample).expanduser()
    roots = [given] if given.is_absolute() else [r / given for r in (samples_dir, base) if r]
    candidates = []
    for path in roots:
        candidates.append(path)
        if path.suffix.lower() not in MIDI_SUFFIXES:
            candidates += [path.with_name(path.name + s) for s in MIDI_SUFFIXES]
    for path in candidates:
        if path.is_file():
            return path, True
    return candidates[0], False


def load_preferences(
    path: str | Path, samples_dir: str | Path | None = None, skip_bad: bool = False
) -> list[Preference]:
    """Read and check a preference file.

    Args:
        path: a JSON array or JSON Lines file (a UTF-8 byte-order mark is accepted).
        samples_dir: the folder sample ids name files in; when given, a sample with no file
            there (nor at the path it spells) is an ``unknown sample``.
        skip_bad: drop bad records with one :class:`PreferenceFileWarning` each, instead of
            rejecting the file.

    Returns:
        The good records, in file order.

    Raises:
        PreferenceFileError: unreadable file, invalid JSON (file, line and column), or bad
            records (missing field, wrong type, unknown sample, duplicate or conflicting
            pair: every one listed with its index and reason) unless ``skip_bad``; also when
            no good record is left.
    """
    path = Path(path)
    folder = Path(samples_dir).expanduser() if samples_dir is not None else None
    if folder is not None and not folder.is_dir():
        raise PreferenceFileError(f"{path}: samples_dir {folder} is not a folder")
    records = _read_records(path)
    problems: dict[int, list[str]] = {}
    lines = {index: line for index, _, line, _ in records}
    kept: dict[int, Preference] = {}
    ids: dict[str, int] = {}
    pairs: dict[tuple[Path, Path], tuple[int, Path | None]] = {}  # samples -> (index, winner)
    for index, record, _, json_error in records:
        found = [json_error] if json_error else _field_problems(record)
        if found:
            problems[index] = found
            continue
        a, a_known = _resolve(record["sample_a"], folder, path.parent)
        b, b_known = _resolve(record["sample_b"], folder, path.parent)
        if folder is not None:
            found += [
                f"unknown sample {record[name]!r} (no {p.name} in {folder})"
                for name, p, known in (("sample_a", a, a_known), ("sample_b", b, b_known))
                if not known
            ]
        preference = Preference(str(record["pair_id"]), a, b, record["preferred"], index)
        if preference.pair_id in ids:
            found.append(
                f"duplicate pair_id {preference.pair_id!r} (record {ids[preference.pair_id]})"
            )
        key = (min(a, b), max(a, b))
        if key in pairs:
            first, winner = pairs[key]
            if winner == preference.winner:
                found.append(f"duplicate pair: same samples and verdict as record {first}")
            else:  # neither verdict can be trusted: both records are bad
                found.append(f"conflicting pair: record {first} judged the same samples otherwise")
                problems.setdefault(first, []).append(
                    f"conflicting pair: record {index} judged the same samples otherwise"
                )
                kept.pop(first, None)
        if found:
            problems[index] = found
            continue
        ids[preference.pair_id] = index
        pairs[key] = (index, preference.winner)
        kept[index] = preference

    def where(index: int) -> str:
        return f"record {index}" + (f" (line {lines[index]})" if lines[index] else "")

    listed = [(i, reason) for i in sorted(problems) for reason in problems[i]]
    if listed and not skip_bad:
        detail = "\n".join(f"  {where(i)}: {reason}" for i, reason in listed)
        raise PreferenceFileError(
            f"{path}: {len(problems)} bad record(s) of {len(records)} "
            f"(load with skip_bad=True to drop them):\n{detail}",
            listed,
        )
    for i, reason in listed:
        warnings.warn(f"{path}: dropped {where(i)}: {reason}", PreferenceFileWarning, stacklevel=2)
    if not kept:
        raise PreferenceFileError(f"{path}: no usable record (of {len(records)})", listed)
    return [kept[i] for i in sorted(kept)]
