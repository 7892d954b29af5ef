"""RL Tuner (Jaques et al. 2017) at its paper's scale: KL-controlled Q-, Psi- and G-learning with
many compositions acting at once and a replay of whole compositions.

- :mod:`.config`: the settings and their checks (replay ratio, epsilon schedule);
- :mod:`.acting`: B compositions, one batched generator step per note;
- :mod:`.replay`: whole compositions stored and drawn uniformly;
- :mod:`.targets`: the three backups;
- :mod:`.trainer`: rounds of acting and the gradient steps the replay ratio owes;
- :mod:`.run`: ``train(setup, algo_cfg)``, resume, logs, samples, the tuned checkpoint.

See docs/rl_tuner.md.
"""

from rlmusic.algos.rl_tuner.run import train

__all__ = ["train"]
