"""HarmonisationEnv: harmonise a given soprano, writing alto, tenor and bass a token per env step,
rewarded by the reward composite."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from rlmusic.envs.composition import resolve_reward, score_step
from rlmusic.envs.render import piano_roll_text

from rlmusic.data.chorale_encoding import ChoraleEncoding
from rlmusic.data.harmonisation import conditioning_prefix
from rlmusic.rewards.composite import CompositeReward


def check_no_prior_term(reward: CompositeReward) -> None:
    """Refuse a prior term: it scores the piece without the soprano the harmoniser reads first,
    so its log-probabilities are not the harmoniser's."""
    from rlmusic.rewards.prior import PriorLogProb

    for term in getattr(reward, "terms", []):
        if isinstance(term.term, PriorLogProb):
            raise ValueError(
                f"reward term {term.name!r} is a prior's log-probability, which reads the piece "
                "without the soprano a harmoniser reads first: hold the harmoniser to its "
                "reference with KL control instead (algo.kl_mode=penalty)"
            )


class HarmonisationEnv(gym.Env):
    """Harmonise a soprano: the agent writes the alto, tenor and bass under it, token by token.

    ## Description
    An episode is one harmonisation in the chorale encoding (four tokens per 16th-note step:
    soprano, alto, tenor, bass). The soprano of ``n`` steps is given: drawn at reset by the env's
    seeded RNG from ``sopranos`` (or passed as ``reset(options={"soprano": tokens})``). The env
    writes every soprano token itself, never the agent: ``S_0`` at reset, and ``S_{t+1}`` right
    after the agent's bass ``B_t``. So the agent acts three times a step (``A_t``, ``T_t``,
    ``B_t``), ``3 n`` actions an episode, and the soprano comes back exactly. This is the
    harmoniser's token layout (:mod:`rlmusic.data.harmonisation`): a generator reads
    ``[BOS, S_0 .. S_{n-1}, BOS, S_0, A_0, T_0, B_0, S_1, ..]``, and the observation is exactly
    what it reads after its first BOS.

    ## Action Space
    ``Discrete(vocab_size)`` (204): the next token of the voice whose turn it is (a chorale token
    ``voice * 51 + local``: 0 NOTE_OFF, 1 hold, 2.. pitches 36..84), as in
    :class:`~rlmusic.envs.composition.CompositionEnv` with the chorale encoding.

    ## Observation Space
    ``Box(0, max(vocab_size, P + L), (P + L + 1,), int64)`` with ``P = n + 1`` and ``L = 4 n``:
    ``obs[:P]`` is the conditioning prefix ``[S_0 .. S_{n-1}, BOS]`` (the whole given melody,
    then BOS = ``vocab_size``), ``obs[P:P + L]`` the piece so far (its soprano tokens included)
    padded with ``vocab_size``, and ``obs[P + L]`` the number of tokens read so far, ``P + t``
    after ``t`` tokens of the piece. It is :class:`CompositionEnv`'s contract (tokens padded
    with BOS, then how many) over the harmoniser's whole input, so a generator's next-token
    distribution for an observation is its output at position ``obs[-1]`` of
    ``[BOS, obs[:obs[-1]]]`` (:func:`rlmusic.algos.sb3.positions.position_outputs`).

    ## Rewards
    The composite scores every token of the piece, the soprano's included, given everything
    before it (its terms are causal, ``(B, T) -> (B, T)``). A soprano token's reward is paid by
    the env step that writes it: ``S_{t+1}``'s with the bass ``B_t`` just written (the agent's
    last choice before it), ``S_0``'s (written at reset, before any choice; a constant of the
    melody) with the first action. So an episode's rewards sum to the composite's total for the
    whole piece, as the batched trainer's returns do, and no reward is dropped.
    ``info["reward_terms"]`` has each term's share of the step's reward. A prior term
    (``PriorLogProb``) is refused: it would score the piece without the soprano prefix; KL to a
    harmoniser is the algorithm's job (``algo=ppo``'s penalty reads the same prefix).

    ## Starting State
    The prefix and ``S_0`` written: ``obs[-1] == P + 1``. The soprano is a row of ``sopranos``
    drawn uniformly by ``np_random`` (seeded by ``reset(seed=...)``), or
    ``options["soprano"]`` (``n`` block-0 tokens, i.e. 0..50).

    ## Episode End
    Terminated after the last bass token (``3 n`` actions); never truncated. End-of-piece terms
    pay on that step.

    ## Arguments
    ``sopranos`` ((N, n) block-0 tokens: the melodies to harmonise, e.g.
    ``SopranoConditions.sopranos`` or :func:`rlmusic.models.conditions.soprano_windows`),
    ``reward`` (a CompositeReward or a ``reward`` config mapping without a prior; required: the
    chorale encoding has no default reward), ``encoding`` (default ``ChoraleEncoding()``),
    ``render_mode`` (``"ansi"``: a text piano roll of the four voices).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        sopranos: np.ndarray,
        reward: CompositeReward | Mapping[str, Any] | None = None,
        encoding: ChoraleEncoding | None = None,
        render_mode: str | None = None,
    ) -> None:
        self.encoding = encoding or ChoraleEncoding()
        self.sopranos = np.asarray(sopranos, dtype=np.int64)
        if self.sopranos.ndim != 2 or not len(self.sopranos) or self.sopranos.shape[1] < 1:
            raise ValueError(
                f"sopranos must be (N, steps) block-0 tokens with N, steps >= 1, got shape "
                f"{self.sopranos.shape}"
            )
        conditioning_prefix(self.sopranos, self.encoding)  # a chorale encoding, tokens in block 0
        self.reward_fn = resolve_reward(reward, self.encoding)
        check_no_prior_term(self.reward_fn)
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.render_mode = render_mode
        self.steps = int(self.sopranos.shape[1])  # n: time steps a piece
        self.per_step = self.encoding.tokens_per_step
        self.length = self.encoding.tokens_for(self.steps)  # L: tokens a piece
        self.prefix_length = self.steps + 1  # P: [S_0 .. S_{n-1}, BOS]
        self.episode_actions = self.length - self.steps  # the agent's: A, T and B of each step
        self.pad = self.encoding.vocab_size  # == BOS
        size = self.prefix_length + self.length
        self.action_space = spaces.Discrete(self.encoding.vocab_size)
        self.observation_space = spaces.Box(
            low=0, high=max(self.pad, size), shape=(size + 1,), dtype=np.int64
        )
        self._context = np.full(size, self.pad, dtype=np.int64)  # prefix, then the piece
        self._position = 0  # tokens of the piece written
        self._soprano = self.sopranos[0].copy()
        self._state: dict[str, Any] = {}
        self._carried = (0.0, {})  # S_0's reward and shares, paid with the first action

    # ---- the episode -----------------------------------------------------------------------

    @property
    def _piece(self) -> np.ndarray:
        return self._context[self.prefix_length :]  # a view: writes land in the observation

    def _observation(self) -> np.ndarray:
        return np.append(self._context, self.prefix_length + self._position).astype(np.int64)

    def _write(self, token: int) -> tuple[float, dict[str, float]]:
        """Write the piece's next token; its reward and each term's share."""
        t = self._position
        self._piece[t] = int(token)
        last = t == self.length - 1
        total, shares = score_step(self.reward_fn, self._piece[None, : t + 1], last, self._state)
        self._position += 1
        return float(total[0]), {name: float(value[0]) for name, value in shares.items()}

    def _write_soprano(self) -> tuple[float, dict[str, float]]:
        """Write the soprano token of the step the piece has reached."""
        return self._write(int(self._soprano[self._position // self.per_step]))

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        soprano = (options or {}).get("soprano")
        if soprano is None:
            soprano = self.sopranos[int(self.np_random.integers(len(self.sopranos)))]
        soprano = np.asarray(soprano, dtype=np.int64).reshape(-1)
        if len(soprano) != self.steps:
            raise ValueError(
                f"options['soprano'] has {len(soprano)} steps, this env harmonises {self.steps}"
            )
        self._soprano = soprano.copy()
        self._context[: self.prefix_length] = conditioning_prefix(soprano, self.encoding)
        self._piece[:] = self.pad
        self._position = 0
        self._state = {}  # the incremental reward terms' state for this episode
        self._carried = self._write_soprano()  # S_0: paid with the first action
        return self._observation(), {"position": self._position}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self._position >= self.length:
            raise RuntimeError("the harmonisation is finished: call reset()")
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is not in {self.action_space}")
        reward, terms = self._write(int(action))
        carried, carried_terms = self._carried
        self._carried = (0.0, {})
        if self._position < self.length and self._position % self.per_step == 0:
            # the bass ended a step: the env writes the next soprano token, paid here
            carried, carried_terms = self._write_soprano()
        reward += carried
        for name, value in carried_terms.items():
            terms[name] = terms.get(name, 0.0) + value
        last = self._position == self.length
        info = {"position": self._position, "reward_terms": terms}
        return self._observation(), reward, last, False, info

    # ---- what the run harness reads -------------------------------------------------------

    def resume_options(self, observation: np.ndarray) -> dict[str, Any]:
        """``reset`` options that restart the harmonisation an observation at the start of an
        episode shows (its soprano): how an exact resume rebuilds the env."""
        return {"soprano": np.asarray(observation[: self.steps], dtype=np.int64)}

    def piece_of(self, observations: np.ndarray) -> np.ndarray:
        """The piece (..., L) in observations (..., P + L + 1)."""
        return np.asarray(observations)[..., self.prefix_length : self.prefix_length + self.length]

    @property
    def soprano(self) -> np.ndarray:
        """The soprano being harmonised (block-0 tokens, one a step)."""
        return self._soprano.copy()

    @property
    def tokens(self) -> np.ndarray:
        """The piece written so far (its soprano tokens included)."""
        return self._piece[: self._position].copy()

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return piano_roll_text(self.tokens, self.encoding, self.length)
        return None
