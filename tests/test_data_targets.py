"""``reward.targets``: the constraints' bands from the data's own rates (rlmusic.algos.data_targets),
and the onsets band that keeps a slow style slow."""

from __future__ import annotations

import numpy as np
import pytest

from rlmusic.algos.constraints import RuleConstraints
from rlmusic.algos.data_targets import band, resolve_targets
from rlmusic.data.encoding import MelodyEncoding
from rlmusic.rewards.base import RewardError
from rlmusic.rewards.build import build_reward
from rlmusic.rewards.statistics import KeySpec, Statistic, composition_stats

ENC = MelodyEncoding()
FOLK_BANDS = {"tonic": {"at_least": 0.32, "at_most": 0.36}, "motif": {"at_least": 0.42}}
TARGETS = {"source": "auto", "published_on": "all", "margin": 0.1, "also": ["onsets"]}
REWARD = {
    "c": 1.0,
    "rules": ["tonic", "motif", "key"],
    "constraints": FOLK_BANDS,
    "targets": TARGETS,
}


def tunes(strike_every: int, n: int = 12, steps: int = 48, seed: int = 0) -> list[np.ndarray]:
    """Seeded C-major tunes that strike a note every ``strike_every`` steps and hold between."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        tune = np.full(steps, 1)
        pitches = rng.choice([60, 62, 64, 65, 67, 69, 71, 72], size=len(tune[::strike_every]))
        tune[::strike_every] = [ENC.pitch_to_token(int(p)) for p in pitches]
        out.append(tune)
    return out


def test_a_band_is_the_rate_plus_and_minus_margin_times_its_room() -> None:
    assert band(0.9, 0.1) == {"at_least": 0.89, "at_most": 0.91}  # room: 0.1 to 1
    assert band(0.3, 0.2) == {"at_least": 0.24, "at_most": 0.36}
    assert band(8.0, 0.25) == {"at_least": 6.0, "at_most": 10.0}  # a rate: relative
    assert band(1.0, 0.1) == {"at_least": 0.995}  # at an edge: only a floor, with room
    assert band(0.01, 0.1) == {"at_least": 0.005, "at_most": 0.015}


def test_published_bands_stay_on_their_own_corpus_and_when_asked() -> None:
    for data, targets in (
        ({"source": "all"}, TARGETS),
        ({"source": "midi_dir"}, {"source": "published"}),
    ):
        cfg, record = resolve_targets({**REWARD, "targets": targets}, data, ENC, 32, tunes(2))
        assert cfg["constraints"] == FOLK_BANDS and cfg["rules"] == REWARD["rules"]
        assert record["source"] == "published"


def test_other_data_gets_its_own_rates_counted_as_evaluate_counts_them() -> None:
    train = tunes(2) + [np.full(20, 1)]  # a tune shorter than the run's length is not counted
    cfg, record = resolve_targets(REWARD, {"source": "midi_dir"}, ENC, 32, train)
    stats = composition_stats([t[:32] for t in train[:-1]], ENC, KeySpec())
    table = stats.table()
    assert record["source"] == "data" and record["openings"] == 12 and record["steps"] == 32
    assert record["rates"] == {
        "tonic": pytest.approx(table[Statistic.TONIC_START]),
        "motif": pytest.approx(table[Statistic.NOTES_IN_MOTIF]),
        "onsets": pytest.approx(stats.onsets_per_composition()),
    }
    assert record["rates"]["onsets"] == 16.0  # a strike every other step of 32
    assert cfg["constraints"]["onsets"] == {"at_least": 14.4, "at_most": 17.6}
    for term in ("tonic", "motif"):
        assert cfg["constraints"][term] == band(record["rates"][term], 0.1)
    assert cfg["rules"] == ["tonic", "motif", "key", "onsets"]
    assert record["added_terms"] == ["onsets"]


def test_a_slow_folder_gets_a_lower_onsets_band_than_a_busy_one() -> None:
    slow, _ = resolve_targets(REWARD, {"source": "midi_dir"}, ENC, 32, tunes(8))
    busy, _ = resolve_targets(REWARD, {"source": "midi_dir"}, ENC, 32, tunes(2))
    assert slow["constraints"]["onsets"]["at_most"] < busy["constraints"]["onsets"]["at_least"]


@pytest.mark.parametrize(
    ("targets", "match"),
    [
        ({"source": "folk"}, "reward.targets.source='folk'"),
        ({"source": "data", "margin": 1.5}, "reward.targets.margin=1.5"),
        ({"source": "data", "also": ["interval"]}, "'interval' has no statistic"),
        ({"source": "data", "bands": 1}, "unknown keys"),
    ],
)
def test_bad_targets_are_named(targets: dict, match: str) -> None:
    with pytest.raises(RewardError, match=match):
        resolve_targets({**REWARD, "targets": targets}, {"source": "midi_dir"}, ENC, 32, tunes(2))


def test_data_too_short_for_the_length_is_one_clear_error() -> None:
    with pytest.raises(RewardError, match="no train tune is 64 steps long"):
        resolve_targets(REWARD, {"source": "midi_dir"}, ENC, 64, tunes(2, steps=48))


def test_the_onsets_band_charges_strikes_above_it_and_pays_for_them_below() -> None:
    reward = build_reward({"c": 1.0, "rules": ["onsets"]}, ENC)
    controller = RuleConstraints(
        reward, {"onsets": {"at_least": 7.0, "at_most": 9.0}}, ENC, KeySpec()
    )
    term = reward.terms[0]
    assert term.weight == 0.0  # a band-only term pays nothing until its row leaves the band
    controller.update(np.stack(tunes(4, steps=32)))  # 8 onsets: inside
    assert term.weight == 0.0
    for _ in range(3):
        controller.update(np.stack(tunes(2, steps=32)))  # 16 onsets: above the ceiling
    busy = term.weight
    assert busy > 0.0  # the -1 per onset is paid: strikes cost
    for _ in range(40):
        controller.update(np.stack(tunes(16, steps=32)))  # 2 onsets: below the floor
    assert term.weight < 0.0  # the sign turns: strikes are paid for
    scores, _ = reward.score(np.stack(tunes(16, steps=32)))
    assert np.all(scores.sum(axis=1) > 0.0) and np.all(scores >= 0.0)


def test_data_of_another_kind_of_music_keeps_the_published_bands() -> None:
    from rlmusic.data.chorale_encoding import ChoraleEncoding

    chorale = {"rules": ["voice_crossing"], "constraints": {"voice_crossing": {"at_most": 0.02}}}
    targets = {"source": "auto", "published_on": "chorales"}
    cfg, record = resolve_targets(
        {**chorale, "targets": targets}, {"source": "all"}, ChoraleEncoding, 8
    )
    assert cfg["constraints"] == chorale["constraints"] and record["source"] == "published"
    assert "data=all is monophonic melodies" in record["why"]
