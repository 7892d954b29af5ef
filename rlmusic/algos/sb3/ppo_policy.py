"""An SB3 actor-critic policy whose actor *is* a generator: its head's softmax is pi(a | s).

An observation of :class:`rlmusic.envs.composition.CompositionEnv` is ``tokens (T,)`` padded with
``vocab_size`` (the generators' BOS token) followed by the position ``t``. The action
distribution is the generator's softmax at position ``t`` of ``[BOS, tokens[:t]]``
(:func:`rlmusic.algos.sb3.positions.position_outputs`), so at the start the policy is exactly
the pretrained model. The value is :class:`rlmusic.algos.value.ValueFunction`: an MLP on the
generator's last hidden layer at the same position, **detached**, with its own optimizer and
PopArt-normalised targets, so no value gradient ever moves the generator.

The policy is built from the generator's architecture name and config dict (plain JSON values in
``policy_kwargs``), never from a pickled module: SB3's ``PPO.load`` rebuilds it from ``model.zip``
and fills the weights from the zip's ``policy.pth`` (read with ``weights_only=True``). A new
policy has freshly initialised weights; :func:`generator_policy_kwargs` and
:meth:`GeneratorPolicy.load_generator` start it from a trained generator.
"""

from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces
from stable_baselines3.common.distributions import CategoricalDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

from rlmusic.algos.sb3.positions import check_same_generator, check_vocabulary, position_outputs
from rlmusic.algos.value import ValueFunction
from rlmusic.models.checkpoint import build_model, generator_config, unwrap


def generator_policy_kwargs(generator: nn.Module, value_lr: float | None = None) -> dict[str, Any]:
    """``policy_kwargs`` that rebuild ``generator``'s architecture (weights are loaded after).

    Args:
        generator: a NoteLSTM, MusicTransformer or a user's model (``model=custom``).
        value_lr: the value function's learning rate (None: the same as the generator's).
    """
    model = unwrap(generator)
    kwargs: dict[str, Any] = {
        "generator_arch": model.arch,
        "generator_config": generator_config(model),
    }
    if value_lr is not None:
        kwargs["value_lr"] = float(value_lr)
    return kwargs


class GeneratorPolicy(ActorCriticPolicy):
    """Actor = a generator's next-token distribution; critic = a value MLP on its detached hidden state.

    The generator stays in eval mode even while SB3 trains (dropout off), so the PPO ratio
    compares the same function that sampled the rollout. Two optimizers: ``optimizer`` holds
    only the generator (SB3's learning-rate schedule moves it), ``value_optimizer`` only the
    value function (at ``value_lr``); :class:`rlmusic.algos.sb3.ppo.GeneratorPPO` clips each
    gradient on its own, so the value loss can neither flow into the generator nor shrink its
    step through a shared gradient norm.

    Args:
        observation_space: the env's ``Box`` of ``length + 1`` integers.
        action_space: ``Discrete(vocab_size)``; must equal the generator's vocabulary.
        lr_schedule: SB3's learning-rate schedule (its value at progress 1 starts Adam).
        generator_arch: ``lstm`` | ``transformer``.
        generator_config: the architecture's config fields (``asdict`` of its config).
        value_lr: the value function's learning rate; None: the generator's.
        use_sde: must be False (SB3 passes it to every on-policy policy).
        optimizer_class: the optimizer (Adam).
        optimizer_kwargs: its extra arguments (default ``eps=1e-5`` for Adam, as SB3).
    """

    def __init__(
        self,
        observation_space: spaces.Box,
        action_space: spaces.Discrete,
        lr_schedule: Schedule,
        generator_arch: str,
        generator_config: dict[str, Any],
        value_lr: float | None = None,
        use_sde: bool = False,
        optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if use_sde:
            raise ValueError(
                "GeneratorPolicy has a categorical action space: use_sde must be False"
            )
        if not isinstance(action_space, spaces.Discrete):
            raise ValueError(f"GeneratorPolicy needs a Discrete action space, got {action_space}")
        check_vocabulary(generator_config, action_space)
        # ActorCriticPolicy.__init__ ends by calling _build, which needs these
        self.generator_arch = str(generator_arch)
        self.generator_config = dict(generator_config)
        self.value_lr = None if value_lr is None else float(value_lr)
        self.length = int(observation_space.shape[0]) - 1
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch=[],
            ortho_init=False,
            use_sde=False,
            normalize_images=False,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
        )

    def _build(self, lr_schedule: Schedule) -> None:
        """The generator, the value function and an optimizer for each (replaces the MLP heads)."""
        self.generator = build_model(self.generator_arch, self.generator_config)
        self.generator.eval()
        probe = torch.full((1, 1), int(self.generator.bos_token), dtype=torch.long)
        with torch.no_grad():
            hidden_size = self.generator.forward_with_hidden(probe)[1].shape[-1]
        self.value_fn = ValueFunction(hidden_size, self.length)
        lr = float(lr_schedule(1))
        self.optimizer = self.optimizer_class(
            self.generator.parameters(), lr=lr, **self.optimizer_kwargs
        )
        self.value_optimizer = self.optimizer_class(
            self.value_fn.parameters(),
            lr=lr if self.value_lr is None else self.value_lr,
            **self.optimizer_kwargs,
        )

    def load_generator(self, generator: nn.Module) -> None:
        """Copy a trained generator's weights into the actor (same architecture and config).

        Raises:
            ValueError: another architecture or config than this policy was built for.
        """
        model = unwrap(generator)
        check_same_generator(model, self.generator_arch, self.generator_config)
        self.generator.load_state_dict(model.state_dict())

    def set_training_mode(self, mode: bool) -> None:
        super().set_training_mode(mode)
        self.generator.eval()  # dropout off: the PPO ratio must compare the sampling function

    def outputs(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits (B, V), the generator's hidden state (B, H) and the values (B,)."""
        logits, hidden = position_outputs(self.generator, obs, self.length)  # (B, V), (B, H)
        return logits, hidden, self.value_fn(hidden, obs[:, self.length])

    def forward(
        self, obs: torch.Tensor, deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Actions (B,), values (B, 1) and the actions' log-probabilities (B,): one forward pass."""
        logits, _, values = self.outputs(obs)
        distribution = self.action_dist.proba_distribution(action_logits=logits)
        actions = distribution.get_actions(deterministic=deterministic)
        return actions, values[:, None], distribution.log_prob(actions)

    def evaluate_actions(
        self, obs: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Values (B, 1), log pi(actions) (B,) and the exact entropy (B,) for PPO's loss."""
        logits, _, values = self.outputs(obs)
        distribution = self.action_dist.proba_distribution(action_logits=logits)
        return values[:, None], distribution.log_prob(actions.reshape(-1)), distribution.entropy()

    def get_distribution(self, obs: torch.Tensor) -> CategoricalDistribution:
        logits, _ = position_outputs(self.generator, obs, self.length)
        return self.action_dist.proba_distribution(action_logits=logits)

    def predict_values(self, obs: torch.Tensor) -> torch.Tensor:
        return self.outputs(obs)[2][:, None]

    def _predict(self, observation: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        return self.get_distribution(observation).get_actions(deterministic=deterministic)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return dict(
            observation_space=self.observation_space,
            action_space=self.action_space,
            lr_schedule=self._dummy_schedule,
            generator_arch=self.generator_arch,
            generator_config=self.generator_config,
            value_lr=self.value_lr,
            optimizer_class=self.optimizer_class,
            optimizer_kwargs=self.optimizer_kwargs,
        )
