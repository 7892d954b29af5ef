"""`rlmusic rewards`: list the registered reward terms, and show the composite a config builds."""

from __future__ import annotations

from omegaconf import DictConfig

from rlmusic.rewards.registry import known_terms


def run(cfg: DictConfig) -> dict[str, str]:
    terms = known_terms()
    width = max(len(name) for name in terms)
    print(
        "registered reward terms (use by name in reward.rules / reward.extra, or _target_ your own):"
    )
    for name, description in terms.items():
        print(f"  {name:<{width}}  {description}")
    reward = cfg.get("reward")
    if reward is not None:
        prior = reward.get("prior")
        described = "none"
        if prior and prior.get("checkpoint"):
            spec = str(prior.checkpoint)
            if spec == "start":
                spec = "start (the model a run starts from)"
            described = f"{spec} (weight {float(prior.weight):g})"
        print(
            f"\nthis config's reward: rules {list(reward.rules)} weighted 1/c = {1 / reward.c:g}; "
            f"prior: {described}; extra: {list(reward.extra) or 'none'}"
        )
    return terms
