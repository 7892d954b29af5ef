"""SB3 policy classes that wrap a generator (actor = the generator's head, critic = a value head).

>>> from rlmusic.policies import GeneratorPolicy, generator_policy_kwargs
"""

from rlmusic.policies.generator_policy import GeneratorPolicy, generator_policy_kwargs

__all__ = ["GeneratorPolicy", "generator_policy_kwargs"]
