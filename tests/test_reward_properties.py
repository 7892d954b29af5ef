"""Every registered term (and the rules' non-default modes) is causal, finite and shape-correct
on random batches: melody terms on melody tokens, the voice-leading terms on chorale tokens (any
length, so a prefix may end inside a frame)."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlmusic.data.chorale_encoding import ChoraleEncoding
from rlmusic.data.encoding import MelodyEncoding
from rlmusic.rewards.prior import PriorLogProb
from rlmusic.rewards.registry import REGISTRY, TERM_KINDS, build_term, default_context
from tests.critic_helpers import tiny_critic
from tests.toy_generator import ToyGenerator

ENC = MelodyEncoding()
CHORALE = ChoraleEncoding()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# non-default modes of the rules, in another key: id -> build_term spec
VARIANTS = {
    "autocorrelation[every_step]": {"name": "autocorrelation", "every_step": True},
    "motif[onsets_only]": {"name": "motif", "onsets_only": True},
    "repeated_motif[onsets_only]": {"name": "repeated_motif", "onsets_only": True},
    "leap_resolution[min_gap=2]": {"name": "leap_resolution", "min_gap": 2, "leap": 5},
    "tonic[any_octave]": {"name": "tonic", "octave": None},
}
# the voice-leading terms (and melody rules applied per voice), built for the chorale encoding
CHORALE_VARIANTS = {
    "per_voice[leap_resolution]": {"name": "per_voice", "rule": "leap_resolution"},
    "per_voice[unique_extremes]": {"name": "per_voice", "rule": "unique_extremes"},
    "per_voice[preferred_intervals]": {"name": "per_voice", "rule": "preferred_intervals"},
    "final_cadence[a_minor]": {"name": "final_cadence", "tonic": 9, "mode": "minor"},
}
CHORALE_TERMS = sorted(
    name for name, kinds in TERM_KINDS.items() if kinds == {"chorale"} and name != "per_voice"
) + sorted(CHORALE_VARIANTS)
MELODY_TERMS = sorted(
    set(REGISTRY) - set(TERM_KINDS) | {n for n, k in TERM_KINDS.items() if "melody" in k}
)


@functools.cache
def make(name: str):
    if name in CHORALE_TERMS:
        spec = CHORALE_VARIANTS.get(name, name)
        return build_term(spec, default_context(CHORALE))
    if name == "prior":  # the registry's prior loads a checkpoint; the toy keeps this fast
        return PriorLogProb(ToyGenerator())
    if name in ("discriminator", "preference"):  # learned critics: a tiny untrained one
        path = tiny_critic(name, Path(tempfile.mkdtemp()) / f"{name}.safetensors")
        return build_term({"name": name, "checkpoint": str(path)}, default_context(ENC))
    context = default_context(ENC, tonic=2, mode="minor") if name in VARIANTS else None
    return build_term(VARIANTS.get(name, name), context or default_context(ENC))


def batches_of(vocab: int, longest: int = 40):
    return st.integers(1, 6).flatmap(
        lambda b: st.integers(2, longest).flatmap(
            lambda t: st.lists(st.integers(0, vocab - 1), min_size=b * t, max_size=b * t).map(
                lambda v: np.array(v).reshape(b, t)
            )
        )
    )


batches = batches_of(ENC.vocab_size)


@pytest.mark.parametrize("name", MELODY_TERMS + sorted(VARIANTS))
@settings(max_examples=40, deadline=None)
@given(tokens=batches, cut=st.integers(0, 39), data=st.data())
def test_term_is_causal_finite_and_shaped(name: str, tokens: np.ndarray, cut: int, data) -> None:
    check_causal(make(name), tokens, cut, data, ENC.vocab_size)


@pytest.mark.parametrize("name", CHORALE_TERMS)
@settings(max_examples=40, deadline=None)
@given(tokens=batches_of(CHORALE.vocab_size, 48), cut=st.integers(0, 47), data=st.data())
def test_chorale_term_is_causal_finite_and_shaped(
    name: str, tokens: np.ndarray, cut: int, data
) -> None:
    check_causal(make(name), tokens, cut, data, CHORALE.vocab_size)


def test_every_registered_term_is_checked() -> None:
    assert set(REGISTRY) <= set(MELODY_TERMS) | set(CHORALE_TERMS) | {"per_voice"}
    assert "per_voice" in {spec["name"] for spec in CHORALE_VARIANTS.values()}


def check_causal(term, tokens: np.ndarray, cut: int, data, vocab: int) -> None:
    """Finite, shaped, causal; a prefix alone earns what it earns inside the piece."""
    rewards = np.asarray(term(tokens))
    assert rewards.shape == tokens.shape
    assert np.all(np.isfinite(rewards))
    cut = cut % tokens.shape[1]
    changed = tokens.copy()
    tail = data.draw(
        st.lists(
            st.integers(0, vocab - 1),
            min_size=changed[:, cut + 1 :].size,
            max_size=changed[:, cut + 1 :].size,
        )
    )
    changed[:, cut + 1 :] = np.array(tail, dtype=changed.dtype).reshape(changed[:, cut + 1 :].shape)
    again = np.asarray(term(changed))
    if getattr(term, "sequence_level", False):
        # end-of-piece terms pay only on the last step, so earlier steps stay 0
        assert not rewards[:, :-1].any() and not again[:, :-1].any()
    else:
        np.testing.assert_allclose(again[:, : cut + 1], rewards[:, : cut + 1], atol=1e-6)
    # a prefix scored alone earns what the same steps earn inside the longer piece
    if not getattr(term, "sequence_level", False):
        np.testing.assert_allclose(
            np.asarray(term(tokens[:, : cut + 1])), rewards[:, : cut + 1], atol=1e-6
        )
