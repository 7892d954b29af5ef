"""CompositionVectorEnv: B compositions stepped at once with array operations."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from rlmusic.envs.composition import (
    default_length,
    observation_space_for,
    resolve_primers,
    resolve_reward,
    score_step,
    whole_steps,
)

from rlmusic.data.encoding import MelodyEncoding
from rlmusic.data.encodings import Encoding
from rlmusic.rewards.composite import CompositeReward


class CompositionVectorEnv(VectorEnv):
    """``num_envs`` compositions in lock-step; same spaces and rewards as CompositionEnv (any
    encoding; ``length`` counts tokens, by default ``encoding.tokens_for(encoding.melody_length)``,
    and like ``primer_steps`` is whole time steps).

    All episodes have the same length, so they end together. Autoreset follows Gymnasium 1.x's
    default (``NEXT_STEP``): the ``step`` after the last one resets every sub-environment, ignores
    the actions and returns the first observations with zero rewards.
    ``infos["reward_terms"]`` maps each term to its (num_envs,) shares.
    """

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int,
        reward: CompositeReward | Mapping[str, Any] | None = None,
        encoding: Encoding | None = None,
        length: int | None = None,
        primers: list[np.ndarray] | None = None,
        primer_midi: str | None = None,
        primer_steps: int = 0,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = num_envs
        self.encoding = encoding or MelodyEncoding()
        self.length = default_length(self.encoding, length or None)
        self.reward_fn = resolve_reward(reward, self.encoding)
        self.primer_steps = whole_steps(self.encoding, primer_steps, "primer_steps")
        if not 0 <= self.primer_steps < self.length:
            raise ValueError(f"primer_steps must be in 0..{self.length - 1}, got {primer_steps}")
        self.primers = resolve_primers(primers, primer_midi, self.encoding, self.primer_steps)
        self.pad = self.encoding.vocab_size
        self.single_action_space = spaces.Discrete(self.encoding.vocab_size)
        self.single_observation_space = observation_space_for(self.encoding, self.length)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self._tokens = np.full((num_envs, self.length), self.pad, dtype=np.int64)
        self._position = 0
        self._start = 0
        self._needs_reset = True
        self._state: dict[str, Any] = {}

    def _observations(self) -> np.ndarray:
        step = np.full((self.num_envs, 1), self._position, dtype=np.int64)
        return np.concatenate([self._tokens, step], axis=1)

    def _reset_all(self, primers: list[np.ndarray] | None) -> None:
        self._tokens[:] = self.pad
        self._state = {}  # the incremental reward terms' state for these episodes
        if primers is None and self.primer_steps:
            picks = self.np_random.integers(len(self.primers), size=self.num_envs)
            primers = [self.primers[i] for i in picks]
        self._start = 0
        if primers is not None:
            if len(primers) != self.num_envs:
                raise ValueError(
                    f"options['primers'] needs {self.num_envs} primers, got {len(primers)}"
                )
            cut = [np.asarray(p, dtype=np.int64)[: self.primer_steps or len(p)] for p in primers]
            resolve_primers(cut, None, self.encoding)  # checks the tokens
            for primer in cut:
                whole_steps(self.encoding, len(primer), "primer")
            if len({len(p) for p in cut}) != 1:
                raise ValueError(
                    "all primers must have the same length (the envs step in lock-step)"
                )
            self._start = len(cut[0])
            if self._start >= self.length:
                raise ValueError(
                    f"a primer of {self._start} steps leaves nothing to compose in {self.length}"
                )
            if self._start:
                self._tokens[:, : self._start] = np.stack(cut)
        self._position = self._start
        self._needs_reset = False

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._reset_all((options or {}).get("primers"))
        return self._observations(), {}

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        zeros = np.zeros(self.num_envs, dtype=bool)
        if self._needs_reset:  # NEXT_STEP autoreset: this step only resets
            self._reset_all(None)
            return self._observations(), np.zeros(self.num_envs), zeros, zeros.copy(), {}
        actions = np.asarray(actions, dtype=np.int64).reshape(self.num_envs)
        if actions.min() < 0 or actions.max() >= self.encoding.vocab_size:
            raise ValueError(f"actions must be in 0..{self.encoding.vocab_size - 1}, got {actions}")
        t = self._position
        self._tokens[:, t] = actions
        last = t == self.length - 1
        total, shares = score_step(self.reward_fn, self._tokens[:, : t + 1], last, self._state)
        self._position += 1
        terminated = np.full(self.num_envs, last)
        self._needs_reset = last
        infos = {
            "reward_terms": shares,
            "position": np.full(self.num_envs, self._position),
        }
        return self._observations(), total.astype(np.float64), terminated, zeros, infos

    @property
    def tokens(self) -> np.ndarray:
        """The pieces written so far, (num_envs, tokens)."""
        return self._tokens[:, : self._position].copy()
