"""Reward terms by name, or by a Hydra ``_target_`` dotted path to the user's own code.

A registry entry makes a term from keyword arguments plus the encoding and key. Users register
their own with :func:`register_term`, or point a config at ``_target_: my_module.my_term``.
A term that reads one kind of music only is listed in :data:`TERM_KINDS` (the melody rules
melodies, the voice-leading rules chorales); building it for another encoding is a one-line
error. Terms not listed there (the prior, the critics, the user's) take any encoding.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from rlmusic.data.encoding import MelodyEncoding
from rlmusic.rewards.base import RewardError
from rlmusic.rewards.harmony_terms import HARMONY_RULES
from rlmusic.rewards.theory import RULES
from rlmusic.targets import import_target

# name -> (factory(**kwargs) -> term, one-line description)
REGISTRY: dict[str, tuple[Callable[..., Any], str]] = {**RULES, **HARMONY_RULES}
# name -> the encoding kinds the term is right for (absent: any kind)
TERM_KINDS: dict[str, frozenset[str]] = {
    **{name: frozenset({"melody"}) for name in RULES},
    **{name: frozenset({"chorale"}) for name in HARMONY_RULES},
}
REGISTRY["prior"] = (
    lambda **kw: _prior_factory(**kw),  # imports torch and the models only when built
    "log p(note | melody so far) under a frozen pretrained generator (KL control)",
)
# learned critics (rlmusic.critics; torch and the critic load only when a term is built)
REGISTRY["discriminator"] = (
    lambda **kw: _critic_factory("discriminator_term", **kw),
    "log D(real | melody so far) from a trained discriminator (checkpoint=...; dense)",
)
REGISTRY["ensemble"] = (
    lambda **kw: _critic_factory("ensemble_term", **kw),
    "mean log p(note | melody so far) over K generators (members=[...]), minus penalty * std",
)
REGISTRY["preference"] = (
    lambda **kw: _critic_factory("preference_term", **kw),
    "Bradley-Terry utility of the composition from a preference model (checkpoint=...)",
)


def _critic_factory(name: str, **kwargs: Any) -> Any:
    """Build a critic term, dropping the context (key, mode) it does not use; a misspelt
    argument of the user's is an error that names the term and its arguments."""
    from rlmusic.critics import terms

    factory = getattr(terms, name)
    params = inspect.signature(factory).parameters
    context = set(default_context(MelodyEncoding()))
    kwargs = {k: v for k, v in kwargs.items() if k in params or k not in context}
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise RewardError(
            f"reward term {name.removesuffix('_term')!r} has no argument(s) {', '.join(unknown)}; "
            f"known: {', '.join(p for p in params if p not in context)}"
        )
    return factory(**kwargs)


def _prior_factory(
    checkpoint: str = "pretrained:note_lstm",
    device: str = "cpu",
    encoding: MelodyEncoding | None = None,
    **_: Any,
) -> Any:
    from rlmusic.models import load_generator
    from rlmusic.rewards.prior import PriorLogProb

    model, prior_encoding = load_generator(checkpoint)
    fields = ("min_pitch", "max_pitch", "steps_per_quarter")
    if encoding is not None and any(
        getattr(prior_encoding, f) != getattr(encoding, f) for f in ("kind", *fields)
    ):
        size = (
            f"has vocab_size {prior_encoding.vocab_size} but the reward's encoding has "
            f"{encoding.vocab_size}"
            if prior_encoding.vocab_size != encoding.vocab_size
            else "has another token grid than the reward's encoding"
        )
        raise RewardError(
            f"the prior {checkpoint!r} {size}: they must share the token grid "
            f"({', '.join(fields)}); prior {prior_encoding}, reward {encoding}"
        )
    return PriorLogProb(model, device=device)


def register_term(name: str, factory: Callable[..., Any], description: str) -> None:
    """Add a term under ``name`` (a class or function taking keyword arguments)."""
    if name in REGISTRY:
        raise RewardError(f"a reward term named {name!r} is already registered")
    REGISTRY[name] = (factory, description)


def known_terms() -> dict[str, str]:
    return {name: description for name, (_, description) in sorted(REGISTRY.items())}


def _import_target(path: str) -> Any:
    return import_target(path, RewardError)


def _accepts(factory: Callable[..., Any], name: str) -> bool:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def build_term(spec: str | Mapping[str, Any], context: Mapping[str, Any]) -> Any:
    """A term from a registry name or a ``{_target_: dotted.path, **kwargs}`` mapping.

    ``context`` (encoding, tonic, mode, device) is passed to factories that accept those names.
    A ``_target_`` that is a plain function of the tokens is used as the term itself.
    """
    if isinstance(spec, str):
        spec = {"name": spec}
    spec = dict(spec)
    if "_target_" in spec:
        target = _import_target(str(spec.pop("_target_")))
        if inspect.isclass(target) or spec:
            kwargs = {k: v for k, v in context.items() if _accepts(target, k)}
            return target(**kwargs, **spec)
        return target
    name = spec.pop("name", None)
    if name not in REGISTRY:
        kind = getattr(context.get("encoding"), "kind", None)
        known = [n for n in sorted(REGISTRY) if kind is None or kind in TERM_KINDS.get(n, {kind})]
        raise RewardError(
            f"unknown reward term {name!r}; known: {', '.join(known)} "
            "(or give _target_: your_module.your_term)"
        )
    check_kind(name, context.get("encoding"))
    factory = REGISTRY[name][0]
    kwargs = {k: v for k, v in context.items() if _accepts(factory, k) and k not in spec}
    return factory(**kwargs, **spec)


def check_kind(name: str, encoding: object) -> None:
    """Refuse a registered term for an encoding it would judge wrongly (one line, naming both).

    >>> from rlmusic.data.chorale_encoding import ChoraleEncoding
    >>> check_kind("key", ChoraleEncoding())
    Traceback (most recent call last):
    ...
    rlmusic.rewards.base.RewardError: reward term 'key' judges melody pieces, and this encoding is chorale (per_voice applies a melody rule to each voice: {name: per_voice, rule: key})
    """
    kinds = TERM_KINDS.get(name)
    kind = getattr(encoding, "kind", None)
    if kinds is None or kind is None or kind in kinds:
        return
    hint = (
        f" (per_voice applies a melody rule to each voice: {{name: per_voice, rule: {name}}})"
        if name in RULES
        else ""
    )
    raise RewardError(
        f"reward term {name!r} judges {'/'.join(sorted(kinds))} pieces, and this encoding is "
        f"{kind}{hint}"
    )


def default_context(
    encoding: MelodyEncoding, tonic: int = 0, mode: str = "major", device: str = "cpu"
) -> dict[str, Any]:
    return {"encoding": encoding, "tonic": tonic, "mode": mode, "device": device}
