"""rlmusic: fine-tune symbolic-music generators with reinforcement learning.

The package root stays import-light (no torch, no music21) so that the CLI starts fast and
``import rlmusic.envs`` only pays for what it uses.
"""

__version__ = "0.1.0"
