"""Gymnasium environments for composing music in any encoding: melodies, chorales (installed as
``rlmusic.envs``), and for harmonising a given soprano.

Importing this package registers ``rlmusic/Composition-v1`` and ``rlmusic/Harmonisation-v0``
(``gymnasium.make("rlmusic/Harmonisation-v0", sopranos=..., reward=...)``); it imports nothing
heavy.
v1 (the leap rule pays as RL Tuner's leap detector decides; the motif rules pay every step of
a qualifying half-bar, as the original) replaced v0, whose rewards meant something else.

>>> import gymnasium, rlmusic.envs
>>> env = gymnasium.make("rlmusic/Composition-v1")
>>> obs, info = env.reset(seed=0)
>>> obs.shape, int(obs[-1])  # 32 tokens (padded with 38) and the step count
((33,), 0)
>>> obs, reward, terminated, truncated, info = env.step(14)  # middle C: in key, the tonic
>>> reward, info["reward_terms"]["tonic"]
(6.0, 6.0)
"""

from gymnasium.envs.registration import register, registry

ENV_ID = "rlmusic/Composition-v1"
HARMONISATION_ENV_ID = "rlmusic/Harmonisation-v0"

if ENV_ID not in registry:
    register(id=ENV_ID, entry_point="rlmusic.envs.composition:CompositionEnv")
if HARMONISATION_ENV_ID not in registry:
    register(id=HARMONISATION_ENV_ID, entry_point="rlmusic.envs.harmonisation:HarmonisationEnv")


def __getattr__(name: str):  # lazy: the env classes pull in numpy-heavy reward code
    if name == "CompositionEnv":
        from rlmusic.envs.composition import CompositionEnv

        return CompositionEnv
    if name == "CompositionVectorEnv":
        from rlmusic.envs.vector import CompositionVectorEnv

        return CompositionVectorEnv
    if name == "HarmonisationEnv":
        from rlmusic.envs.harmonisation import HarmonisationEnv

        return HarmonisationEnv
    raise AttributeError(name)


__all__ = [
    "ENV_ID",
    "HARMONISATION_ENV_ID",
    "CompositionEnv",
    "CompositionVectorEnv",
    "HarmonisationEnv",
]
