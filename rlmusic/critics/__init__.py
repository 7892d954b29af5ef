"""Learned critics: rewards a network learned, usable wherever a reward term is.

* **discriminator** -- a causal CNN telling real windows from a generator's samples, scoring
  every prefix (a dense reward); :func:`refresh` retrains it on the current policy's samples.
* **ensemble** -- the mean log-likelihood under K generators (RL-Duet), their disagreement,
  and an optional uncertainty penalty (Coste et al. 2024).
* **preference** -- a Bradley-Terry reward model over pairwise judgements
  (:func:`load_preferences` reads and checks the judgement files).

Each saves and loads under the generators' safe-checkpoint rules (:mod:`rlmusic.critics.io`)
with its validation figures in the checkpoint's metadata. ``rlmusic train-critic
critic=discriminator|ensemble|preference`` trains one; ``reward.extra`` uses one:
``{name: discriminator, checkpoint: <file or run folder>, weight: 1.0}``.
"""

from rlmusic.critics.bradley_terry import (
    PreferenceTrainConfig,
    pairs_from_preferences,
    train_preference,
)
from rlmusic.critics.cnn import CausalCNN, CriticConfig
from rlmusic.critics.data import cut_windows, midi_folder_windows, sample_generators
from rlmusic.critics.discriminator import (
    DiscriminatorTrainConfig,
    evaluate_discriminator,
    refresh,
    train_discriminator,
)
from rlmusic.critics.ensemble import (
    EnsembleCritic,
    build_ensemble,
    evaluate_ensemble,
    load_ensemble,
    save_ensemble,
)
from rlmusic.critics.io import load_cnn_critic, read_critic_record, save_cnn_critic
from rlmusic.critics.preference_file import (
    Preference,
    PreferenceFileError,
    PreferenceFileWarning,
    load_preferences,
)
from rlmusic.critics.stats import binary_auc
from rlmusic.critics.terms import (
    DiscriminatorReward,
    EnsembleReward,
    PreferenceReward,
    discriminator_term,
    ensemble_term,
    preference_term,
)

__all__ = [
    "CausalCNN",
    "CriticConfig",
    "DiscriminatorReward",
    "DiscriminatorTrainConfig",
    "EnsembleCritic",
    "EnsembleReward",
    "Preference",
    "PreferenceFileError",
    "PreferenceFileWarning",
    "PreferenceReward",
    "PreferenceTrainConfig",
    "binary_auc",
    "build_ensemble",
    "cut_windows",
    "discriminator_term",
    "ensemble_term",
    "evaluate_discriminator",
    "evaluate_ensemble",
    "load_cnn_critic",
    "load_ensemble",
    "load_preferences",
    "midi_folder_windows",
    "pairs_from_preferences",
    "preference_term",
    "read_critic_record",
    "refresh",
    "sample_generators",
    "save_cnn_critic",
    "save_ensemble",
    "train_discriminator",
    "train_preference",
]
