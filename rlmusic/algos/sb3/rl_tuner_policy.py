"""SB3 policy for RL Tuner: the Q-network *is* a generator whose logits at step t are Q(s_t, .).

Q(s, .) is the generator's logit vector at position ``t`` of ``[BOS, tokens[:t]]`` for an
observation of :class:`rlmusic.envs.composition.CompositionEnv` (``tokens`` padded with BOS, then
``t``), so the Q-network starts as an exact copy of the pretrained model and the tuned Q-network
loads anywhere a generator does. Training and targets read whole prefixes
(:func:`rlmusic.algos.sb3.positions.position_outputs`); acting keeps each environment's generator
state from step to step (:class:`rlmusic.algos.sb3.positions.IncrementalLogits`).

The policy is built from plain values (:func:`rl_tuner_policy_kwargs`): the generator's
architecture name and config dict and, for G-learning, the prior's checkpoint spec
(``pretrained:<name>`` or a path), which the policy loads itself. SB3's ``model.zip`` therefore
holds no pickled module: ``RLTunerDQN.load`` (or SB3's own ``DQN.load``) rebuilds the networks,
fills the Q- and target networks from the zip's ``policy.pth`` and re-reads the prior from its
spec. A new policy has freshly initialised weights; :meth:`RLTunerPolicy.load_generator` starts
it from a trained generator.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.dqn.policies import DQNPolicy
from torch import nn

from rlmusic.algos.sb3.positions import (
    IncrementalLogits,
    check_same_generator,
    check_vocabulary,
    position_logits,
)
from rlmusic.models.base import frozen
from rlmusic.models.checkpoint import build_model, unwrap
from rlmusic.models.registry import PRETRAINED_PREFIX, load_generator

VARIANTS = ("q", "psi", "g")


def prior_spec(spec: str | Path) -> str:
    """A checkpoint spec that loads from any working directory: ``pretrained:<name>`` as it is,
    a path made absolute."""
    spec = str(spec)
    if spec.startswith(PRETRAINED_PREFIX):
        return spec
    return str(Path(spec).expanduser().resolve())


def rl_tuner_policy_kwargs(generator: nn.Module, prior: str | Path | None = None) -> dict[str, Any]:
    """``policy_kwargs`` for :class:`RLTunerPolicy`: plain values only (weights are loaded after).

    Args:
        generator: the pretrained generator (anything in ``models.ARCHITECTURES``); only its
            architecture and config are recorded.
        prior: G-learning's prior as a checkpoint spec (``pretrained:<name>`` or a path), or None.
    """
    model = unwrap(generator)
    return {
        "generator_arch": model.arch,
        "generator_config": asdict(model.config),
        "prior": None if prior is None else prior_spec(prior),
    }


def load_prior(spec: str, vocab_size: int) -> nn.Module:
    """The frozen prior (eval mode, no gradients) a G-learning policy reads ``log p_prior`` from.

    Raises:
        CheckpointError: an unknown name or an unreadable checkpoint.
        ValueError: a prior of another vocabulary than the action space.
    """
    prior, _ = load_generator(spec)
    if int(prior.vocab_size) != int(vocab_size):
        raise ValueError(
            f"the prior {spec} has vocab_size {prior.vocab_size} but the action space has "
            f"{vocab_size} tokens: they must share the token encoding"
        )
    return frozen(prior)


def _forget_after_load(module: nn.Module, incompatible_keys: Any) -> None:
    module.forget_acting_state()  # new weights: the cached acting states are stale


class GeneratorQNetwork(BasePolicy):
    """Q(s, .) = a generator's logits; ``policy_logits`` gives the variant's behaviour policy.

    ``q``: softmax(Q / temperature); ``psi``: softmax(Psi / psi_temperature); ``g``:
    softmax(G + log p_prior). The prior is frozen and kept out of ``parameters()`` and
    ``state_dict()`` (it is not trained, not soft-updated and not saved: its spec is).

    ``forward`` and ``prior_log_probs`` recompute whole prefixes (training, targets; with
    gradients); ``acting_values`` and ``policy_logits`` step each environment's cached state
    (acting; no gradients; equal to the recomputation up to float rounding).
    """

    def __init__(
        self,
        observation_space: spaces.Box,
        action_space: spaces.Discrete,
        generator: nn.Module,
        prior: nn.Module | None = None,
        variant: str = "q",
        psi_temperature: float = 1.0,
    ) -> None:
        super().__init__(observation_space, action_space, normalize_images=False)
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if variant == "g" and prior is None:
            raise ValueError("G-learning needs a prior network")
        if int(generator.vocab_size) != int(action_space.n):
            raise ValueError(
                f"generator vocab_size {generator.vocab_size} != action space {action_space.n}"
            )
        self.generator = generator
        self._prior = (prior,) if prior is not None else ()  # a tuple: not a submodule
        self.variant = variant
        self.psi_temperature = float(psi_temperature)
        self.length = int(observation_space.shape[0]) - 1
        self._acting = IncrementalLogits(self.generator, self.length)
        self._prior_acting = IncrementalLogits(prior, self.length) if prior is not None else None
        self.register_load_state_dict_post_hook(_forget_after_load)

    @property
    def prior(self) -> nn.Module | None:
        """The frozen prior, on the generator's device (``.to()`` of the policy skips it)."""
        if not self._prior:
            return None
        prior = self._prior[0]
        device = next(self.generator.parameters()).device
        if next(prior.parameters()).device != device:
            prior.to(device)
        return prior

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Q(s, .) (B, V) from whole prefixes: the training path (gradients flow)."""
        return position_logits(self.generator, obs, self.length)

    @torch.no_grad()
    def prior_log_probs(self, obs: torch.Tensor) -> torch.Tensor:
        """log p_prior(. | s) (B, V) from whole prefixes."""
        return F.log_softmax(position_logits(self.prior, obs, self.length), dim=-1)

    def acting_values(self, obs: torch.Tensor) -> torch.Tensor:
        """Q(s, .) (B, V) for acting: one generator step per env step (no gradients)."""
        return self._acting(obs)

    def acting_prior_log_probs(self, obs: torch.Tensor) -> torch.Tensor:
        """log p_prior(. | s) (B, V) for acting (cached states, no gradients)."""
        if self.prior is None or self._prior_acting is None:  # the property places the prior
            raise ValueError("this Q-network has no prior")
        return F.log_softmax(self._prior_acting(obs), dim=-1)

    def forget_acting_state(self) -> None:
        """Drop the acting states (call after any change of the weights)."""
        self._acting.clear()

    def policy_logits(self, obs: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """The behaviour policy's logits (B, V) for acting (cached states, no gradients)."""
        values = self.acting_values(obs)
        if self.variant == "q":
            return values / temperature
        if self.variant == "psi":
            return values / self.psi_temperature
        return values + self.acting_prior_log_probs(obs)

    def _predict(self, observation: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        return self.policy_logits(observation).argmax(dim=1).reshape(-1)


class RLTunerPolicy(DQNPolicy):
    """DQN policy whose Q-network and target network are generators of one architecture.

    Args:
        observation_space: the env's ``Box`` of ``length + 1`` integers.
        action_space: ``Discrete(vocab_size)``; must equal the generator's vocabulary.
        lr_schedule: SB3's learning-rate schedule.
        generator_arch: ``lstm`` | ``transformer``.
        generator_config: the architecture's config fields (``asdict`` of its config).
        prior: G-learning's prior as a checkpoint spec (``pretrained:<name>`` or a path);
            loaded here, frozen, never saved with the policy.
        variant: ``q`` | ``psi`` | ``g``.
        psi_temperature: Psi-learning's ``c_T``.
        optimizer_class: the optimizer (Adam).
        optimizer_kwargs: its extra arguments.
    """

    def __init__(
        self,
        observation_space: spaces.Box,
        action_space: spaces.Discrete,
        lr_schedule: Schedule,
        generator_arch: str,
        generator_config: dict[str, Any],
        prior: str | None = None,
        variant: str = "q",
        psi_temperature: float = 1.0,
        optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if variant == "g" and prior is None:
            raise ValueError("G-learning needs a prior: policy_kwargs prior=<checkpoint spec>")
        if variant != "g" and prior is not None:
            raise ValueError(f"a prior enters the policy of variant=g only (got variant={variant})")
        check_vocabulary(generator_config, action_space)
        # DQNPolicy.__init__ calls _build -> make_q_net twice (Q and target): set up first;
        # the prior is loaded once and shared (a tuple: Module.__init__ has not run yet)
        self.generator_arch = str(generator_arch)
        self.generator_config = dict(generator_config)
        self.prior_spec = None if prior is None else str(prior)
        self.variant = variant
        self.psi_temperature = float(psi_temperature)
        self._prior_model = (
            (load_prior(self.prior_spec, int(action_space.n)),) if self.prior_spec else ()
        )
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            normalize_images=False,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
        )

    def make_q_net(self) -> GeneratorQNetwork:
        net = GeneratorQNetwork(
            self.observation_space,
            self.action_space,
            build_model(self.generator_arch, self.generator_config),
            prior=self._prior_model[0] if self._prior_model else None,
            variant=self.variant,
            psi_temperature=self.psi_temperature,
        )
        return net.to(self.device)

    def load_generator(self, generator: nn.Module) -> None:
        """Start the Q- and target networks from a trained generator (same architecture/config).

        Raises:
            ValueError: another architecture or config than this policy was built for.
        """
        model = unwrap(generator)
        check_same_generator(model, self.generator_arch, self.generator_config)
        self.q_net.generator.load_state_dict(model.state_dict())
        self.q_net_target.generator.load_state_dict(model.state_dict())
        self.q_net.forget_acting_state()

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return dict(
            observation_space=self.observation_space,
            action_space=self.action_space,
            lr_schedule=self._dummy_schedule,
            generator_arch=self.generator_arch,
            generator_config=self.generator_config,
            prior=self.prior_spec,
            variant=self.variant,
            psi_temperature=self.psi_temperature,
            optimizer_class=self.optimizer_class,
            optimizer_kwargs=self.optimizer_kwargs,
        )


class PolicyGenerator(nn.Module):
    """A generator whose logits are the tuned policy's: ``Q / temperature (+ log p_prior)``.

    For G-learning the policy is ``p_prior * exp(G)``, which no single network holds; this
    wrapper samples it (``step``/``forward`` like any generator) for the run's MIDI samples.
    """

    def __init__(
        self, generator: nn.Module, prior: nn.Module | None = None, temperature: float = 1.0
    ) -> None:
        super().__init__()
        self.generator = generator
        self.prior = prior
        self.temperature = float(temperature)
        self.vocab_size = int(generator.vocab_size)

    @property
    def bos_token(self) -> int:
        return int(self.generator.bos_token)

    def _combine(self, logits: torch.Tensor, prior_logits: torch.Tensor | None) -> torch.Tensor:
        out = logits.float() / self.temperature
        if prior_logits is not None:
            out = out + F.log_softmax(prior_logits.float(), dim=-1)
        return out

    def forward_with_hidden(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, hidden = self.generator.forward_with_hidden(tokens)
        prior_logits = self.prior.forward(tokens) if self.prior is not None else None
        return self._combine(logits, prior_logits), hidden

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.forward_with_hidden(tokens)[0]

    def step(self, token: torch.Tensor, state: Any | None) -> tuple[torch.Tensor, Any]:
        own, prior_state = state if state is not None else (None, None)
        logits, own = self.generator.step(token, own)
        prior_logits = None
        if self.prior is not None:
            prior_logits, prior_state = self.prior.step(token, prior_state)
        return self._combine(logits, prior_logits), (own, prior_state)
