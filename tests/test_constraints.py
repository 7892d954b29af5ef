"""Rule targets as constraints: multipliers that pay a rule only while its target is missed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlmusic.algos.constraints import RuleConstraints, build_constraints
from rlmusic.data.encoding import MelodyEncoding
from rlmusic.rewards.base import RewardError
from rlmusic.rewards.build import build_reward
from rlmusic.rewards.statistics import KeySpec, Statistic, composition_stats

ENC = MelodyEncoding()
C4, D4, E4 = (ENC.pitch_to_token(p) for p in (60, 62, 64))
H = 1


def reward():
    return build_reward({"c": 0.5, "rules": ["tonic", "key", "motif"]}, ENC)


def batch(tonic_share: float, n: int = 20) -> np.ndarray:
    """``n`` pieces of 8 steps, the first ``tonic_share`` of them starting on C."""
    starts = np.where(np.arange(n) < round(tonic_share * n), C4, D4)
    return np.stack([[s, H, E4, H, D4, H, E4, H] for s in starts])


def weight(composite, name: str) -> float:
    return next(t.weight for t in composite.terms if t.name == name)


def test_the_batch_statistic_is_counted_as_evaluate_counts_it() -> None:
    composite = reward()
    constraints = RuleConstraints(composite, {"tonic": {"at_least": 0.3}}, ENC, KeySpec())
    tokens = batch(0.25)
    metrics = constraints.update(tokens)
    expected = composition_stats(tokens, ENC).table()[Statistic.TONIC_START]
    assert metrics["constraint/tonic/statistic"] == expected == 0.25
    assert metrics["constraint/tonic/at_least"] == 0.3


def test_a_missed_target_raises_the_weight_and_a_passed_one_lowers_it_to_nothing() -> None:
    composite = reward()
    base = weight(composite, "tonic")
    constraints = RuleConstraints(
        composite, {"tonic": {"at_least": 0.3}}, ENC, KeySpec(), lr=0.5, kp=0.0, max_multiplier=3.0
    )
    constraints.update(batch(0.0))  # missed by all of its room (0.3): + 0.5
    assert weight(composite, "tonic") == pytest.approx(base * 1.5)
    constraints.update(batch(0.15))  # missed by half of it: + 0.25
    assert weight(composite, "tonic") == pytest.approx(base * 1.75)
    for _ in range(20):
        constraints.update(batch(0.0))
    assert weight(composite, "tonic") == pytest.approx(base * 3.0)  # capped
    for _ in range(3):  # every piece on the tonic: 0.7 past the target, - 1.17 a batch
        constraints.update(batch(1.0))
    assert weight(composite, "tonic") == 0.0  # no more pay, exactly
    constraints.update(batch(0.0))
    assert weight(composite, "tonic") == pytest.approx(base * 0.5)  # back at once when missed
    assert weight(composite, "key") == 2.0  # unconstrained terms keep their weight (1 / c)
    constraints.update(batch(1.0))
    assert not composite.score(batch(1.0))[1]["tonic"].any()  # what the trainer is paid


def test_an_at_most_target_moves_the_other_way_in_units_of_its_room() -> None:
    composite = build_reward({"c": 1.0, "rules": ["key", "leap_resolution"]}, ENC)
    constraints = RuleConstraints(
        composite, {"key": {"at_most": 0.01}}, ENC, KeySpec(), lr=0.01, kp=0.0
    )
    out_of_key = np.full((4, 8), ENC.pitch_to_token(61))  # C# struck on every step
    constraints.update(out_of_key)
    # 1.0 - 0.01 above a ceiling whose room is 0.01: the penalty's weight grows by 0.99
    assert constraints.constraints[0].multiplier == pytest.approx(1.99)


def test_the_proportional_term_answers_at_once_and_the_integral_settles() -> None:
    composite = reward()
    constraints = RuleConstraints(
        composite, {"tonic": {"at_least": 0.3}}, ENC, KeySpec(), lr=0.1, kp=0.5
    )
    b = constraints.constraints[0].bounds[0]
    constraints.update(batch(0.0))  # v = +1: integral 1.1, multiplier 1.1 + 0.5
    assert (b.integral, b.multiplier) == pytest.approx((1.1, 1.6))
    constraints.update(batch(0.3))  # on target: the proportional part vanishes at once
    assert (b.integral, b.multiplier) == pytest.approx((1.1, 1.1))
    constraints.update(batch(0.6))  # v = -1: 1.0 and 0.5
    assert (b.integral, b.multiplier) == pytest.approx((1.0, 0.5))


def test_a_ceiling_pays_a_statistic_back_down_when_it_overshoots() -> None:
    composite = reward()
    base = weight(composite, "tonic")
    band = {"tonic": {"at_least": 0.3, "at_most": 0.4}}
    constraints = RuleConstraints(composite, band, ENC, KeySpec(), lr=0.5, kp=0.0)
    constraints.update(batch(0.35))  # inside the band: floor - 0.05/0.3, ceiling - 0.05/0.4
    assert weight(composite, "tonic") == pytest.approx(base * (1 - 0.5 * 0.05 / 0.3))
    for _ in range(5):  # every piece on the tonic: the floor lets go, the ceiling pushes back
        constraints.update(batch(1.0))
    assert weight(composite, "tonic") < 0  # tonic starts now cost
    metrics = constraints(0, None)
    assert metrics["constraint/tonic/at_most"] == 0.4 and metrics["constraint/tonic/statistic"] == 1


def test_inside_a_band_no_multiplier_moves_so_a_statistic_need_not_sit_on_the_floor() -> None:
    composite = reward()
    base = weight(composite, "tonic")
    band = {"tonic": {"at_least": 0.3, "at_most": 0.5}}
    constraints = RuleConstraints(composite, band, ENC, KeySpec(), lr=0.5, kp=0.5)
    constraints.tune(hold=True)
    for share in (0.3, 0.45, 0.5, 0.4):  # the edges count as inside
        constraints.update(batch(share))
        assert weight(composite, "tonic") == pytest.approx(base)
    constraints.update(batch(0.6))  # above: the floor's multiplier falls, the ceiling's rises
    served, ceiling = constraints.constraints[0].bounds
    assert served.multiplier < 1.0 and ceiling.multiplier > 0.0
    # both counted from the crossed edge, 0.5: -0.1 / 0.3 for the floor, +0.1 / 0.5 for the
    # ceiling (from the floor, 0.3 below 0.6 would have read as a whole room past it)
    assert (served.integral, ceiling.integral) == pytest.approx((1 - 0.5 / 3, 0.1))
    for _ in range(2):  # back inside: the integrals that brought it back are kept
        constraints.update(batch(0.45))
        assert weight(composite, "tonic") == pytest.approx(base * (1 - 0.5 / 3 - 0.1))
    one_sided = RuleConstraints(reward(), {"tonic": {"at_least": 0.3}}, ENC, KeySpec(), lr=0.5)
    one_sided.tune(hold=True)
    one_sided.update(batch(0.45))  # no ceiling: "no more than it takes" pulls it to the target
    assert one_sided.constraints[0].multiplier < 1.0
    pulled = RuleConstraints(reward(), band, ENC, KeySpec(), lr=0.5, kp=0.0)  # no hold
    pulled.update(batch(0.45))  # the floor's integral falls: the least weight that meets it
    assert pulled.constraints[0].multiplier == pytest.approx(1.0 - 0.5 * 0.15 / 0.3)


def test_smoothing_moves_on_a_running_average_of_the_statistic_and_resumes_it() -> None:
    band = {"tonic": {"at_least": 0.3, "at_most": 0.5}}
    constraints = RuleConstraints(reward(), band, ENC, KeySpec(), lr=0.5, kp=0.0)
    constraints.tune(smoothing=0.75, hold=True)
    constraints.update(batch(0.4))  # the first batch is the average
    constraints.update(batch(0.8))  # 0.75 * 0.4 + 0.25 * 0.8 = 0.5: inside, nothing moves
    assert constraints.averages["tonic"] == pytest.approx(0.5)
    assert constraints.latest["constraint/tonic/average"] == pytest.approx(0.5)
    assert constraints.latest["constraint/tonic/statistic"] == pytest.approx(0.8)
    assert constraints.constraints[0].multiplier == pytest.approx(1.0)
    constraints.update(batch(0.8))  # 0.575: past the ceiling by 0.075 / 0.5
    served, ceiling = constraints.constraints[0].bounds
    assert ceiling.integral == pytest.approx(0.5 * 0.075 / 0.5)
    fresh = RuleConstraints(reward(), band, ENC, KeySpec(), lr=0.5, kp=0.0)
    fresh.tune(smoothing=0.75)
    fresh.load_state_dict(constraints.state_dict())
    assert fresh.averages == constraints.averages
    with pytest.raises(RewardError, match="algo.constraint_smoothing"):
        fresh.tune(smoothing=1.0)


def test_the_wrapped_score_pays_with_the_current_weights_then_updates() -> None:
    composite = reward()
    constraints = RuleConstraints(composite, {"tonic": {"at_least": 0.3}}, ENC, KeySpec())
    score = constraints.wrap(composite.score)
    tokens = batch(1.0)
    before = composite.score(tokens)[0]
    np.testing.assert_allclose(score(tokens)[0], before)  # this batch: the old multiplier
    assert constraints.constraints[0].multiplier < 1.0  # the next: lowered
    assert constraints(3, None)["constraint/tonic/multiplier"] < 1.0  # the hook's metrics


def test_state_round_trips_and_a_different_set_is_refused() -> None:
    composite = reward()
    constraints = RuleConstraints(composite, {"tonic": {"at_least": 0.3}}, ENC, KeySpec())
    constraints.update(batch(0.0))
    state = constraints.state_dict()
    fresh = RuleConstraints(reward(), {"tonic": {"at_least": 0.3}}, ENC, KeySpec())
    fresh.load_state_dict(state)
    assert weight(fresh.reward, "tonic") == weight(composite, "tonic")
    other = RuleConstraints(reward(), {"motif": {"at_least": 0.4}}, ENC, KeySpec())
    with pytest.raises(RewardError, match="same reward.constraints"):
        other.load_state_dict(state)
    banded = RuleConstraints(reward(), {"tonic": {"at_least": 0.3, "at_most": 0.5}}, ENC, KeySpec())
    with pytest.raises(RewardError, match="same reward.constraints"):
        banded.load_state_dict(state)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"nonesuch": {"at_least": 0.3}}, "no such term"),
        ({"tonic": {"at_least": 0.5, "at_most": 0.3}}, "must lie below"),
        ({"tonic": {"target": 0.3}}, "at_least and / or at_most"),
    ],
    ids=["unknown-term", "empty-band", "no-bound"],
)
def test_bad_constraints_are_named(spec: dict, match: str) -> None:
    with pytest.raises(RewardError, match=match):
        RuleConstraints(reward(), spec, ENC, KeySpec())


def test_a_term_without_a_statistic_is_refused() -> None:
    composite = build_reward({"c": 1.0, "rules": ["preferred_intervals"]}, ENC)
    with pytest.raises(RewardError, match="no statistic is known"):
        RuleConstraints(composite, {"preferred_intervals": {"at_least": 1}}, ENC, KeySpec())


def test_no_constraints_builds_nothing() -> None:
    assert build_constraints({"constraints": {}}, reward(), ENC) is None
    assert build_constraints({}, reward(), ENC) is None


def test_a_learner_pools_batches_and_scales_the_gains() -> None:
    plain, tuned = reward(), reward()
    spec = {"tonic": {"at_least": 0.5}}
    every = RuleConstraints(plain, spec, ENC, KeySpec())
    pooled = RuleConstraints(tuned, spec, ENC, KeySpec())
    pooled.tune(gain=2.0, min_pieces=40)
    first = pooled.update(batch(0.0))  # 20 pieces: pooled, nothing moves yet
    assert weight(tuned, "tonic") == weight(plain, "tonic")
    assert set(first) == set(every.latest)  # every column from the first row on
    assert math.isnan(first["constraint/tonic/statistic"])
    pooled.update(batch(0.5))  # 40 pieces: one move on the pooled share, 0.25
    every.update(np.concatenate([batch(0.0), batch(0.5)]))
    assert pooled.latest["constraint/tonic/statistic"] == 0.25
    # the same shortfall at twice the gains: twice the step above the base weight
    base = 2.0  # 1 / c
    assert weight(tuned, "tonic") - base == pytest.approx(2 * (weight(plain, "tonic") - base))
    with pytest.raises(RewardError, match="constraint_gain > 0"):
        pooled.tune(gain=0.0)
