"""Build the reward composite from a ``reward`` config node (conf/reward/*.yaml)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rlmusic.data.encoding import MelodyEncoding
from rlmusic.rewards.base import RewardError
from rlmusic.rewards.composite import CompositeReward, WeightedTerm
from rlmusic.rewards.registry import build_term, default_context

# ``reward.prior.checkpoint: start`` (the presets' default): the prior is the model being tuned,
# as it was before any update. Only the caller knows which model that is (``start_checkpoint``).
START_MODEL = "start"


def plain(node: Any) -> Any:
    """OmegaConf nodes -> plain containers (no-op for dicts and lists)."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(node, (DictConfig, ListConfig)):
            return OmegaConf.to_container(node, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf ships with hydra-core
        pass
    return node


def build_reward(
    cfg: Mapping[str, Any],
    encoding: MelodyEncoding,
    device: str = "cpu",
    start_checkpoint: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> CompositeReward:
    """Rules weighted ``1 / c``, the prior term with its weight, and the user's extra terms.

    Config keys: ``c``, ``tonic``, ``mode``, ``rules`` (names), ``rule_params`` (name -> kwargs),
    ``prior`` (``{checkpoint, weight}`` or null), ``extra`` (name -> ``{_target_ | name, weight, **kwargs}``).
    ``prior.checkpoint: start`` is ``start_checkpoint``, the model a run starts from.
    A discriminator term's ``checkpoint: auto`` (the default reward's realism critic) is the
    critic for ``data`` and ``start_checkpoint`` (:mod:`rlmusic.critics.auto`): the shipped one
    on its own corpus, else one trained on ``data`` against the start model (``rlmusic finetune``
    trains and caches it; here a missing one is an error); with no ``data``, the shipped one
    and a warning.

    Raises:
        RewardError: a bad value, ``prior.checkpoint: start`` with no start model given, or no
            critic yet for an ``auto`` term's data.
    """
    cfg = plain(cfg) or {}
    if _names_auto(cfg):  # checkpoint: auto made concrete (and logged)
        from rlmusic.critics.auto import resolve_auto_critics

        cfg, _ = resolve_auto_critics(cfg, plain(data), start_checkpoint, device=device)
    c = float(cfg.get("c", 0.5))
    if c <= 0:
        raise RewardError(f"reward.c must be > 0, got {c}")
    context = default_context(
        encoding, int(cfg.get("tonic", 0)), str(cfg.get("mode", "major")), device
    )
    params = cfg.get("rule_params") or {}
    unknown = set(params) - set(cfg.get("rules") or [])
    if unknown:
        raise RewardError(
            f"reward.rule_params names rules that are not in reward.rules: {sorted(unknown)}"
        )
    terms: list[WeightedTerm] = []
    for name in cfg.get("rules") or []:
        try:
            term = build_term({"name": name, **(params.get(name) or {})}, context)
        except TypeError as exc:
            raise RewardError(f"reward.rule_params.{name}: {exc}") from None
        terms.append(WeightedTerm(name, term, 1.0 / c))
    prior = cfg.get("prior")
    if prior and prior.get("checkpoint"):
        spec = str(prior["checkpoint"])
        if spec == START_MODEL:
            if start_checkpoint is None:
                raise RewardError(
                    "reward.prior.checkpoint=start names the model a run starts from, and there is "
                    "none here: give a checkpoint (reward.prior.checkpoint=pretrained:note_lstm)"
                )
            spec = str(start_checkpoint)
        term = build_term({"name": "prior", "checkpoint": spec}, context)
        terms.append(WeightedTerm("prior", term, float(prior.get("weight", 1.0))))
    for name, spec in (cfg.get("extra") or {}).items():
        spec = dict(spec or {})
        weight = float(spec.pop("weight", 1.0))
        terms.append(WeightedTerm(name, build_term(spec, context), weight))
    if not terms:
        raise RewardError(
            "the reward has no terms: give reward.rules, reward.prior or reward.extra"
        )
    return CompositeReward(terms)


def _names_auto(cfg: Mapping[str, Any]) -> bool:
    """Whether an extra term asks for ``checkpoint: auto`` or carries its ``auto`` settings
    (only then are the critics imported; a concrete checkpoint goes to the term as it is)."""
    return any(
        isinstance(spec, Mapping) and (spec.get("checkpoint") == "auto" or "auto" in spec)
        for spec in (cfg.get("extra") or {}).values()
    )
