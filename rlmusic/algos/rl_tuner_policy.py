"""SB3 policy for RL Tuner: the Q-network *is* a generator whose logits at step t are Q(s_t, .).

An observation of :class:`rlmusic.envs.composition.CompositionEnv` is ``tokens (T,)`` padded with
``vocab_size`` (== the generators' BOS token) followed by the position ``t``. Q(s, .) is the
generator's logit vector at position ``t`` of ``[BOS, tokens[:t]]``, so the Q-network starts as an
exact copy of the pretrained model and the tuned Q-network loads anywhere a generator does.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.dqn.policies import DQNPolicy
from torch import nn

VARIANTS = ("q", "psi", "g")


def covering_rows(tokens: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """For each row i, a row j (B,) whose prefix ``tokens[j, :t_j]`` extends ``tokens[i, :t_i]``.

    Observations of one composition are prefixes of each other, so a causal generator's outputs
    at position ``t_i`` of row j are row i's: one forward pass per longest prefix serves a whole
    rollout or minibatch (PPO's minibatches hold ~8 steps of each piece; a rollout all 32).
    """
    batch, length = tokens.shape
    inside = torch.arange(length, device=t.device)[None, :] < t[:, None]  # (B, L): i's prefix
    agree = (tokens[:, None, :] == tokens[None, :, :]) | ~inside[:, None, :]  # (B_i, B_j, L)
    covers = agree.all(-1) & (t[None, :] >= t[:, None])  # (B_i, B_j); every row covers itself
    # the covering row with the longest prefix (ties: the first), so few distinct rows remain
    rank = t[None, :] * batch + (batch - 1 - torch.arange(batch, device=t.device))[None, :]
    return torch.where(covers, rank, torch.full_like(rank, -1)).argmax(dim=1)


def position_outputs(
    generator: nn.Module, obs: torch.Tensor, length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token logits (B, V) and last hidden layer (B, H) for observations (B, length + 1).

    The terminal observation (position == length) has no next token: it is scored at the last
    position (its value is masked by ``done`` in every backup and bootstrap). Rows whose prefix
    another row extends are read off that row's forward pass (:func:`covering_rows`).
    """
    obs = obs.long()
    tokens = obs[:, :length]
    t = obs[:, length].clamp(0, length - 1)
    source = covering_rows(tokens, t)  # (B,)
    rows, slot = torch.unique(source, return_inverse=True)  # the K rows that are run
    span = int(t.max()) + 1  # causal: positions past the largest t are not needed
    bos = torch.full_like(tokens[rows, :1], int(generator.bos_token))
    inputs = torch.cat([bos, tokens[rows, : span - 1]], dim=1)  # (K, span)
    logits, hidden = generator.forward_with_hidden(inputs)  # (K, span, V), (K, span, H)
    return logits[slot, t].float(), hidden[slot, t].float()


def position_logits(generator: nn.Module, obs: torch.Tensor, length: int) -> torch.Tensor:
    """Logits (B, V) of ``generator`` for the next token of each observation (B, length + 1)."""
    return position_outputs(generator, obs, length)[0]


class GeneratorQNetwork(BasePolicy):
    """Q(s, .) = a generator's logits; ``policy_logits`` gives the variant's behaviour policy.

    ``q``: softmax(Q / temperature); ``psi``: softmax(Psi / psi_temperature); ``g``:
    softmax(G + log p_prior). The prior is frozen and kept out of ``parameters()`` and
    ``state_dict()`` (it is not trained and is not soft-updated).
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

    @property
    def prior(self) -> nn.Module | None:
        return self._prior[0] if self._prior else None

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return position_logits(self.generator, obs, self.length)

    @torch.no_grad()
    def prior_log_probs(self, obs: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(position_logits(self.prior, obs, self.length), dim=-1)

    def policy_logits(self, obs: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        values = self(obs)
        if self.variant == "q":
            return values / temperature
        if self.variant == "psi":
            return values / self.psi_temperature
        return values + self.prior_log_probs(obs)

    def _predict(self, observation: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        return self.policy_logits(observation).argmax(dim=1).reshape(-1)


class RLTunerPolicy(DQNPolicy):
    """DQN policy whose Q-network and target network are copies of a pretrained generator."""

    def __init__(
        self,
        observation_space: spaces.Box,
        action_space: spaces.Discrete,
        lr_schedule: Schedule,
        generator: nn.Module,
        prior: nn.Module | None = None,
        variant: str = "q",
        psi_temperature: float = 1.0,
        optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        # DQNPolicy.__init__ calls _build -> make_q_net; modules go in a tuple before Module init
        self._q_args = (generator, prior, variant, float(psi_temperature))
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            normalize_images=False,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
        )

    def make_q_net(self) -> GeneratorQNetwork:
        generator, prior, variant, psi_temperature = self._q_args
        net = GeneratorQNetwork(
            self.observation_space,
            self.action_space,
            copy.deepcopy(generator),
            prior=prior,
            variant=variant,
            psi_temperature=psi_temperature,
        )
        return net.to(self.device)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        generator, prior, variant, psi_temperature = self._q_args
        return dict(
            observation_space=self.observation_space,
            action_space=self.action_space,
            lr_schedule=self._dummy_schedule,
            generator=generator,
            prior=prior,
            variant=variant,
            psi_temperature=psi_temperature,
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
