"""The encodings by kind: one place that turns a config node or a saved record into an encoding.

A kind of music is an encoding class with the interface :class:`Encoding` names; registering
it here is what lets configs (``encoding.kind: chorale``), checkpoints and caches name it.
Records written before kinds existed have no ``kind`` and are melodies.

>>> encoding_from_record(encoding_record(ChoraleEncoding())) == ChoraleEncoding()
True
>>> encoding_from_record({"min_pitch": 48, "max_pitch": 83, "steps_per_quarter": 4,
...                       "melody_length": 32, "beats_per_bar": 4}).kind
'melody'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, Union

from rlmusic.data.chorale_encoding import ChoraleEncoding
from rlmusic.data.encoding import MelodyEncoding

# What every layer may call: kind, voice_names, vocab_size, tokens_per_step, tokens_for(steps),
# steps_in(tokens), steps_per_bar, steps_per_quarter, melody_length, pitches(tokens),
# decode(tokens), decode_voices(tokens), voice_columns(tokens), to_pretty_midi, to_music21,
# cache_key(), default_program.
Encoding = Union[MelodyEncoding, ChoraleEncoding]  # noqa: UP007 - a runtime alias

ENCODINGS: dict[str, type] = {"melody": MelodyEncoding, "chorale": ChoraleEncoding}


def _build(kind: str, values: dict[str, Any], where: str) -> Encoding:
    try:
        cls = ENCODINGS[kind]
    except KeyError:
        raise ValueError(
            f"{where}: unknown encoding kind {kind!r}; known: {', '.join(sorted(ENCODINGS))}"
        ) from None
    try:
        return cls(**values)
    except TypeError as exc:
        raise ValueError(f"{where}: {exc}") from None


def encoding_from_cfg(node: Mapping[str, Any]) -> Encoding:
    """A task config's ``encoding`` node (a DictConfig or a dict) -> its encoding.

    ``kind`` picks the class (default ``melody``); unknown keys are an error naming them."""
    from omegaconf import DictConfig, OmegaConf

    values = (
        OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    )
    kind = str(values.pop("kind", None) or "melody")
    return _build(kind, values, "encoding")


def encoding_record(encoding: Encoding) -> dict[str, Any]:
    """Plain values that :func:`encoding_from_record` rebuilds the encoding from."""
    return {"kind": encoding.kind, **asdict(encoding)}


def encoding_from_record(record: Mapping[str, Any], where: str = "record") -> Encoding:
    values = dict(record)
    kind = str(values.pop("kind", "melody"))
    return _build(kind, values, where)
