"""CompositionEnv: compose one piece (a melody, a chorale: any encoding), a token per env step,
rewarded by the reward composite."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from rlmusic.envs.render import piano_roll_text

from rlmusic.data.encoding import MelodyEncoding
from rlmusic.data.encodings import Encoding
from rlmusic.rewards.composite import CompositeReward


def default_reward(encoding: Encoding) -> CompositeReward:
    """RL Tuner's nine rules weighted 1/c (c = 0.5), without a prior (no checkpoint needed).

    Those rules judge melodies: another encoding's env is given its reward.
    """
    if encoding.kind != "melody":
        raise ValueError(
            f"a {encoding.kind} environment has no default reward (the default is RL Tuner's "
            "melody rules): pass reward= (a CompositeReward, a reward config mapping such as "
            "conf/reward/*.yaml's, or your own terms)"
        )
    from rlmusic.rewards.build import build_reward
    from rlmusic.rewards.theory import PAPER_RULES

    return build_reward({"c": 0.5, "rules": list(PAPER_RULES), "prior": None}, encoding)


def resolve_reward(
    reward: CompositeReward | Mapping[str, Any] | None, encoding: Encoding
) -> CompositeReward:
    """A composite as given, one built from a ``reward`` config mapping, or the default."""
    if reward is None:
        return default_reward(encoding)
    if isinstance(reward, Mapping):
        from rlmusic.rewards.build import build_reward

        return build_reward(reward, encoding)
    if not hasattr(reward, "score"):
        raise TypeError(f"reward must be a CompositeReward or a reward config, got {reward!r}")
    return reward


def resolve_primers(
    primers: Sequence[np.ndarray] | None,
    primer_midi: str | None,
    encoding: Encoding,
    primer_steps: int = 0,
) -> list[np.ndarray]:
    """Primer sources as token arrays: the given tunes plus the piece of ``primer_midi`` (read
    by :func:`rlmusic.data.io.load_piece` in the encoding).

    With ``primer_steps > 0`` (tokens), tunes shorter than ``primer_steps`` cannot give a
    primer and are left out; none left is an error, as is a token outside the vocabulary.
    """
    out = [np.asarray(p, dtype=np.int64).reshape(-1) for p in (primers or [])]
    if primer_midi is not None:
        from rlmusic.data.io import load_piece

        out.append(load_piece(primer_midi, encoding).astype(np.int64))
    for tune in out:
        if tune.size and (tune.min() < 0 or tune.max() >= encoding.vocab_size):
            raise ValueError(f"primer tokens must be in 0..{encoding.vocab_size - 1}")
    if primer_steps:
        out = [tune for tune in out if len(tune) >= primer_steps]
        if not out:
            raise ValueError(
                f"primer_steps={primer_steps} needs primers=[...] or primer_midi=path with at "
                f"least {primer_steps} steps"
            )
    return out


def score_step(
    reward: CompositeReward, prefix: np.ndarray, final: bool, state: dict[str, Any]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(B,) rewards of the last step of ``prefix`` (B, t + 1) and each term's (B,) share.

    Uses the composite's incremental ``score_last`` (the prior steps its generator one token;
    ``state`` lives for one episode) or, for a plain object with ``score``, its last column.
    """
    if hasattr(reward, "score_last"):
        return reward.score_last(prefix, final, state)
    total, shares = reward.score(prefix, include_sequence_level=final)
    return total[:, -1], {name: share[:, -1] for name, share in shares.items()}


def whole_steps(encoding: Encoding, tokens: int, what: str) -> int:
    """``tokens`` checked to be whole time steps of the encoding (a chorale's step is 4 tokens:
    an episode or a primer cut inside a step would leave voices unwritten)."""
    tokens = int(tokens)
    if tokens % encoding.tokens_per_step:
        raise ValueError(
            f"{what}: {tokens} tokens is not a whole number of {encoding.kind} time steps "
            f"({encoding.tokens_per_step} tokens each)"
        )
    return tokens


def default_length(encoding: Encoding, length: int | None) -> int:
    """An episode's tokens: ``length``, else ``encoding.tokens_for(encoding.melody_length)``."""
    if length is None:
        return encoding.tokens_for(encoding.melody_length)
    return whole_steps(encoding, length, "length")


def observation_space_for(encoding: Encoding, length: int) -> spaces.Box:
    high = max(encoding.vocab_size, length)  # pad token == vocab_size; the step index <= length
    return spaces.Box(low=0, high=high, shape=(length + 1,), dtype=np.int64)


class CompositionEnv(gym.Env):
    """Compose a piece of ``length`` tokens, one token per env step, in any encoding.

    ## Description
    The agent writes a piece on a 16th-note grid: a monophonic melody (RL Tuner's task, one
    token per time step) or a four-part chorale (``ChoraleEncoding``: soprano, alto, tenor and
    bass tokens of each time step in turn, so a time step is four env steps). Each env step adds
    one token; the reward composite (music-theory rules, a prior, learned critics or your own
    terms) scores it given everything before it.

    ## Action Space
    ``Discrete(vocab_size)``. A melody: 0 = NOTE_OFF (the voice stops: a rest), 1 = NO_EVENT
    (the voice holds its note, or its rest), 2.. = MIDI pitches ``min_pitch..max_pitch`` (48..83:
    38 actions). A chorale: each voice has its own block of 51 such tokens (pitches 36..84),
    token ``voice * 51 + local``: 204 actions, and a token names its voice.

    ## Observation Space
    ``Box(0, max(vocab_size, length), (length + 1,), int64)``: ``obs[:length]`` are the tokens so
    far (the primer's included), padded with ``vocab_size`` (the generators' BOS token) after the
    current one; ``obs[length]`` is the number of tokens written so far (its remainder mod
    ``encoding.tokens_per_step`` is the voice to write next).

    ## Rewards
    The composite's total for the token just written: ``sum_i w_i * term_i(tokens)[:, t]``.
    End-of-piece terms pay on the last token. ``info["reward_terms"]`` has each term's share.
    With the default composite (the nine RL Tuner rules / c, c = 0.5, no prior) a uniformly
    random policy earns about +169 per 32-step melody (motif +198, leap resolution +111,
    preferred intervals -121, key -25): the rules alone pay for busy noise, which is why RL
    Tuner adds the prior term (``reward=rl_tuner``). A chorale env needs a reward whose terms
    read chorales (the harmony rules, a critic, a prior or your own function).

    ## Starting State
    Empty, or a primer: with ``primer_steps > 0`` the first ``primer_steps`` tokens of a
    piece drawn (by the env's seeded RNG) from ``primers`` / ``primer_midi``, or of
    ``options={"primer": tokens}`` given to ``reset``. Primer tokens are not rewarded.

    ## Episode End
    Terminated when the piece reaches ``length`` tokens; never truncated. The default is
    ``encoding.tokens_for(encoding.melody_length)``: 32 tokens (two 4/4 bars) for a melody,
    256 (64 time steps, four bars, times four voices) for a chorale.

    ## Arguments
    ``reward`` (a CompositeReward, or a ``reward`` config mapping given to ``build_reward``;
    default the nine rules), ``encoding`` (default ``MelodyEncoding()``),
    ``length`` (tokens per episode, whole time steps; default as above), ``primers`` (token
    arrays: pieces whose first ``primer_steps`` tokens are primers; shorter ones are left out),
    ``primer_midi`` (a MIDI/MusicXML/ABC file), ``primer_steps`` (tokens, whole time steps;
    0 = compose from scratch), ``render_mode`` (``"ansi"``: a text piano roll).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        reward: CompositeReward | Mapping[str, Any] | None = None,
        encoding: Encoding | None = None,
        length: int | None = None,
        primers: list[np.ndarray] | None = None,
        primer_midi: str | None = None,
        primer_steps: int = 0,
        render_mode: str | None = None,
    ) -> None:
        self.encoding = encoding or MelodyEncoding()
        self.length = default_length(self.encoding, length or None)
        self.reward_fn = resolve_reward(reward, self.encoding)
        self.primer_steps = whole_steps(self.encoding, primer_steps, "primer_steps")
        if not 0 <= self.primer_steps < self.length:
            raise ValueError(f"primer_steps must be in 0..{self.length - 1}, got {primer_steps}")
        self.primers = resolve_primers(primers, primer_midi, self.encoding, self.primer_steps)
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.render_mode = render_mode
        self.pad = self.encoding.vocab_size
        self.action_space = spaces.Discrete(self.encoding.vocab_size)
        self.observation_space = observation_space_for(self.encoding, self.length)
        self._tokens = np.full(self.length, self.pad, dtype=np.int64)
        self._position = 0
        self._state: dict[str, Any] = {}

    def _observation(self) -> np.ndarray:
        return np.append(self._tokens, self._position).astype(np.int64)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._tokens[:] = self.pad
        self._position = 0
        self._state = {}  # the incremental reward terms' state for this episode
        primer = (options or {}).get("primer")
        if primer is None and self.primer_steps:
            primer = self.primers[int(self.np_random.integers(len(self.primers)))]
        if primer is not None:
            primer = np.asarray(primer, dtype=np.int64)[: self.primer_steps or len(primer)]
            resolve_primers([primer], None, self.encoding)  # checks the tokens
            whole_steps(self.encoding, len(primer), "primer")
            if len(primer) >= self.length:
                raise ValueError(
                    f"a primer of {len(primer)} steps leaves nothing to compose in {self.length}"
                )
            self._tokens[: len(primer)] = primer
            self._position = len(primer)
        return self._observation(), {"position": self._position}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self._position >= self.length:
            raise RuntimeError("the composition is finished: call reset()")
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is not in {self.action_space}")
        t = self._position
        self._tokens[t] = int(action)
        last = t == self.length - 1
        total, shares = score_step(self.reward_fn, self._tokens[None, : t + 1], last, self._state)
        self._position += 1
        info = {
            "position": self._position,
            "reward_terms": {k: float(v[0]) for k, v in shares.items()},
        }
        return self._observation(), float(total[0]), last, False, info

    @property
    def tokens(self) -> np.ndarray:
        """The tokens written so far (primer included)."""
        return self._tokens[: self._position].copy()

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return piano_roll_text(self.tokens, self.encoding, self.length)
        return None
