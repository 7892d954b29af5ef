"""Every CUDA branch that can run without a GPU, run on the CPU (docs/gpu.md lists what is
still owed to a GPU run).

- the one autocast rule (:func:`rlmusic.runtime.choose_autocast`) for fake CUDA GPUs with and
  without native bf16, and CPUs with and without it; every trainer and validation read it;
- bf16 autocast on the CPU through one step of each trainer (the CUDA path's numerics, by
  proxy): the forward passes really run in bf16 and the step matches fp32's closely;
- device resolution, the DDP backend and ``set_device`` under a fake torchrun with fake GPUs;
- the RNG states a resume saves and restores, with a fake ``torch.cuda``;
- device placement: each trainer built on the ``meta`` device has every parameter, buffer and
  tensor it keeps there.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.vec_env import DummyVecEnv

from rlmusic.algos.batched.config import BatchedConfig
from rlmusic.algos.batched.trainer import BatchedTrainer
from rlmusic.algos.rl_tuner.config import RLTunerConfig
from rlmusic.algos.rl_tuner.trainer import RLTunerTrainer
from rlmusic.algos.sb3 import state as sb3_state
from rlmusic.config.preflight import check_device
from rlmusic.config.validate import ConfigError
from rlmusic.critics.stats import seeded_torch
from rlmusic.data.encoding import MelodyEncoding
from rlmusic.models import MusicTransformer, TransformerConfig
from rlmusic.pretraining import distributed, validation
from rlmusic.pretraining.config import TrainConfig
from rlmusic.pretraining.distributed import DistInfo, ddp_backend
from rlmusic.pretraining.loop import Pretrainer
from rlmusic.pretraining.state import capture_rng, restore_rng
from rlmusic.runtime import Autocast, choose_autocast, resolve_device
from tests.conftest import tiny_lstm

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---- fakes -----------------------------------------------------------------------------------


def fake_bf16(monkeypatch: pytest.MonkeyPatch, native: bool, emulated: bool | None = None) -> None:
    """A fake GPU: native bf16 (Ampere and later) or only torch's emulation of it."""
    emulated = native if emulated is None else emulated

    def supported(including_emulation: bool = True) -> bool:
        return emulated if including_emulation else native

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", supported)


def fake_cpu_bf16(monkeypatch: pytest.MonkeyPatch, avx512: bool | None, amx: bool | None) -> None:
    """A fake CPU's native-bf16 probes (None: a torch too old to have the probe)."""
    for probe, native in (("_is_avx512_bf16_supported", avx512), ("_is_amx_tile_supported", amx)):
        if native is None:
            monkeypatch.delattr(torch.cpu, probe, raising=False)
        else:
            monkeypatch.setattr(torch.cpu, probe, lambda native=native: native, raising=False)


def fake_gpus(monkeypatch: pytest.MonkeyPatch, count: int) -> dict[int, torch.Tensor]:
    """``count`` fake CUDA devices whose RNG states live in the returned dict."""
    states = {i: torch.tensor([i], dtype=torch.uint8) for i in range(count)}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)

    def index(device: object = "cuda") -> int:
        device = torch.device(device) if not isinstance(device, int) else device
        return device if isinstance(device, int) else (device.index or 0)

    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda d="cuda": states[index(d)].clone())
    monkeypatch.setattr(
        torch.cuda, "set_rng_state", lambda s, d="cuda": states.__setitem__(index(d), s.clone())
    )
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [states[i] for i in states])
    monkeypatch.setattr(
        torch.cuda,
        "set_rng_state_all",
        lambda new: [states.__setitem__(i, s.clone()) for i, s in enumerate(new)],
    )
    return states


class MetaSafeGenerator(torch.Generator):
    """torch has no generator on ``meta``: a CPU one stands in (only placement is tested)."""

    def __new__(cls, device: str | torch.device = "cpu") -> MetaSafeGenerator:
        meta = torch.device(device).type == "meta"
        return super().__new__(cls, "cpu" if meta else device)

    def __init__(self, device: str | torch.device = "cpu") -> None:
        pass


def tiny_transformer(seed: int = 0) -> MusicTransformer:
    """A tiny MusicTransformer (torch's meta kernels cannot run an LSTM)."""
    torch.manual_seed(seed)
    return MusicTransformer(
        TransformerConfig(d_model=16, n_heads=2, n_layers=1, d_ff=32, dropout=0.0)
    )


def devices_of(*modules: torch.nn.Module) -> set[torch.device]:
    return {t.device for m in modules for t in [*m.parameters(), *m.buffers()]}


class OutputDtypes:
    """Records the dtype of the logits of every call of a model's ``method``."""

    def __init__(self, model: torch.nn.Module, method: str = "forward") -> None:
        self.seen: set[torch.dtype] = set()
        original = getattr(model, method)

        def recorded(*args: object, **kwargs: object) -> object:
            out = original(*args, **kwargs)
            self.seen.add((out[0] if isinstance(out, tuple) else out).dtype)
            return out

        setattr(model, method, recorded)


# ---- the one autocast rule -------------------------------------------------------------------

# precision, device, GPU bf16 (native, emulated), CPU probes (avx512, amx), native_cpu_bf16 ->
# autocast on?
RULE = {
    "fp32-asked-kept": ("fp32", "cuda", (True, True), (True, True), True, False),
    "bf16-asked-cpu": ("bf16", "cpu", (False, False), (False, False), False, True),
    "bf16-asked-emulating-gpu": ("bf16", "cuda", (False, True), (False, False), False, True),
    "auto-ampere": ("auto", "cuda", (True, True), (False, False), False, True),
    "auto-pre-ampere-is-fp32": ("auto", "cuda:1", (False, True), (True, True), True, False),
    "auto-cpu-default-fp32": ("auto", "cpu", (True, True), (True, True), False, False),
    "auto-cpu-native-avx512": ("auto", "cpu", (False, False), (True, False), True, True),
    "auto-cpu-native-amx": ("auto", "cpu", (False, False), (False, True), True, True),
    "auto-cpu-not-native": ("auto", "cpu", (True, True), (False, False), True, False),
    "auto-cpu-old-torch": ("auto", "cpu", (True, True), (None, None), True, False),
    "auto-meta": ("auto", "meta", (True, True), (True, True), True, False),
    "auto-mps": ("auto", "mps", (True, True), (True, True), True, False),
}


@pytest.mark.parametrize(
    ("precision", "device", "gpu", "cpu", "native_cpu", "on"), RULE.values(), ids=RULE.keys()
)
def test_autocast_rule(
    precision: str,
    device: str,
    gpu: tuple[bool, bool],
    cpu: tuple[bool | None, bool | None],
    native_cpu: bool,
    on: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_bf16(monkeypatch, *gpu)
    fake_cpu_bf16(monkeypatch, *cpu)
    chosen = choose_autocast(torch.device(device), precision, native_cpu_bf16=native_cpu)
    assert chosen == Autocast(torch.device(device).type, on)
    assert (chosen.name, chosen.dtype) == (
        ("bf16", torch.bfloat16) if on else ("fp32", torch.float32)
    )


@pytest.mark.parametrize(
    ("precision", "device", "message"),
    [
        ("fp16", "cpu", "precision='fp16' is not one of auto, fp32, bf16"),
        ("bf16", "cuda", "precision=bf16 but cuda cannot compute bf16"),
        ("bf16", "mps", "precision=bf16 is supported on cpu and cuda devices, not mps"),
    ],
)
def test_autocast_refuses_what_the_device_cannot_do(
    precision: str, device: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_bf16(monkeypatch, native=False, emulated=False)  # a GPU torch cannot compute bf16 on
    with pytest.raises(ValueError, match=f"^{message}"):
        choose_autocast(device, precision)


def test_autocast_on_computes_in_bf16_and_off_is_a_null_context_anywhere() -> None:
    a, b = torch.randn(4, 8), torch.randn(8, 2)
    with Autocast("cpu", True)():
        assert (a @ b).dtype == torch.bfloat16
    with Autocast("cpu", False)():
        assert (a @ b).dtype == torch.float32
    with Autocast("meta", False)():  # torch.autocast("meta", enabled=False) raises
        assert (torch.empty(4, 8, device="meta") @ torch.empty(8, 2, device="meta")).is_meta


@pytest.mark.parametrize("native", [True, False], ids=["ampere", "pre-ampere"])
def test_every_trainer_and_validation_take_the_rule(
    native: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A fake GPU's answer reaches each consumer (before, a GPU without native bf16 crashed
    every trainer: torch.autocast raises for bf16 there)."""
    fake_bf16(monkeypatch, native=native, emulated=True)
    cuda = torch.device("cuda", 0)
    assert choose_autocast(cuda).enabled is native
    seen = []

    def spy(device: torch.device, *args: object, **kwargs: object) -> Autocast:
        chosen = choose_autocast(cuda if device.type == "cpu" else device, *args, **kwargs)
        seen.append(chosen.enabled)
        return Autocast("cpu", False)  # the CPU stands in for the GPU from here on

    for module in ("rlmusic.algos.batched.trainer", "rlmusic.algos.rl_tuner.trainer"):
        monkeypatch.setattr(f"{module}.choose_autocast", spy)
    monkeypatch.setattr("rlmusic.pretraining.loop.choose_autocast", spy)
    monkeypatch.setattr(validation, "choose_autocast", spy)
    batched_trainer(tiny_lstm())
    rl_tuner_trainer(tiny_lstm(), precision="auto")
    pretrainer(tiny_lstm(), tmp_path, torch.device("cpu"))
    validation.evaluate_tunes(tiny_lstm(), [np.array([2, 3, 4, 5])], window=4)
    assert seen == [native] * 4


# ---- bf16 autocast through one step of each trainer, on the CPU ------------------------------


def batched_trainer(policy: torch.nn.Module, device: str = "cpu") -> BatchedTrainer:
    config = BatchedConfig(
        batch_size=16, minibatch_size=8, length=8, group_size=8, method="ppo", epochs=1
    )
    reward = lambda tokens: ((tokens % 3 == 0).astype(np.float32), {})  # noqa: E731
    return BatchedTrainer(policy, reward, config, seed=0, device=device)


def rl_tuner_trainer(
    q_network: torch.nn.Module, precision: str = "fp32", device: str = "cpu"
) -> RLTunerTrainer:
    config = RLTunerConfig(n_envs=4, batch_size=16, length=8, buffer_size=64, precision=precision)
    reward = lambda tokens, prior: (np.ones(tokens.shape), {})  # noqa: E731
    prior = tiny_transformer(1) if isinstance(q_network, MusicTransformer) else tiny_lstm(1)
    return RLTunerTrainer(q_network, reward, config, prior, seed=0, device=device)


def pretrainer(model: torch.nn.Module, out: Path, device: torch.device) -> Pretrainer:
    tunes = [np.arange(2, 2 + 20) % 30 + 2 for _ in range(8)]
    cfg = TrainConfig(epochs=1, batch_size=4, window=8, warmup_steps=0, valid_batch_size=4)
    info = DistInfo(device=device)
    out.mkdir(parents=True, exist_ok=True)
    return Pretrainer(model, MelodyEncoding(), tunes, tunes[:2], cfg, out, 0, info, progress=False)


def test_batched_step_runs_in_cpu_bf16_like_fp32() -> None:
    metrics = {}
    for name in ("fp32", "bf16"):
        trainer = batched_trainer(tiny_lstm())
        trainer.autocast = Autocast("cpu", name == "bf16")
        dtypes = OutputDtypes(trainer.policy, "forward_with_hidden")  # scoring and updates
        metrics[name] = trainer.step()
        assert dtypes.seen == {trainer.autocast.dtype}
        assert all(np.isfinite(v) for v in metrics[name].values())
    # the same rollout (sampling is fp32 either way): bf16 moves the scores by its rounding only
    fp32, bf16 = metrics["fp32"], metrics["bf16"]
    for key in ("losses/policy", "losses/value", "losses/grad_norm", "kl/prior_per_token"):
        assert bf16[key] == pytest.approx(fp32[key], rel=0.05, abs=1e-3), key
    assert bf16["losses/clipfrac"] == 0.0  # bf16's rounding of log pi never reaches the clip


def test_rl_tuner_gradient_step_runs_in_cpu_bf16_like_fp32() -> None:
    losses = {}
    for precision in ("fp32", "bf16"):
        trainer = rl_tuner_trainer(tiny_lstm(), precision=precision)
        assert trainer.precision == precision
        trainer.round()  # fills the replay (acting is fp32 in both)
        dtypes = OutputDtypes(trainer.q_network)
        before = [p.detach().clone() for p in trainer.q_network.parameters()]
        losses[precision] = trainer.gradient_step()["losses/td"]
        assert dtypes.seen == {trainer.autocast.dtype}
        assert any(not torch.equal(a, p) for a, p in zip(before, trainer.q_network.parameters()))
        assert all(p.dtype == torch.float32 for p in trainer.q_network.parameters())
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.05)


def test_pretraining_step_and_validation_run_in_cpu_bf16_like_fp32(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nll = {}
    for name in ("fp32", "bf16"):
        trainer = pretrainer(tiny_lstm(), tmp_path / name, torch.device("cpu"))
        trainer.autocast = Autocast("cpu", name == "bf16")
        monkeypatch.setattr(validation, "choose_autocast", lambda _d, a=trainer.autocast: a)
        dtypes = OutputDtypes(trainer.model)
        nll[name] = trainer.train_step(np.array([[0, 0], [1, 0], [2, 0], [3, 0]]))[0]
        valid = trainer.evaluate()["valid_nll"]
        trainer.close()
        assert dtypes.seen == {trainer.autocast.dtype}
        assert np.isfinite(valid)
    assert nll["bf16"] == pytest.approx(nll["fp32"], rel=0.02)


# ---- devices, DDP ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "gpus", "local_rank", "expected"),
    [
        ("auto", 2, 1, "cuda:1"),  # under torchrun: this process's GPU
        ("cuda", 2, 1, "cuda:1"),
        ("cuda:0", 2, 1, "cuda:0"),  # named: kept
        ("auto", 0, 1, "cpu"),
        ("cpu", 2, 0, "cpu"),
    ],
)
def test_resolve_device(
    name: str, gpus: int, local_rank: int, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_gpus(monkeypatch, gpus)
    assert resolve_device(name, local_rank) == torch.device(expected)


@pytest.mark.parametrize(
    ("device", "gpus", "backend", "set_device"),
    [("auto", 2, "nccl", ["cuda:1"]), ("cpu", 2, "gloo", []), ("auto", 0, "gloo", [])],
)
def test_torchrun_setup_picks_backend_and_gpu(
    device: str,
    gpus: int,
    backend: str,
    set_device: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_gpus(monkeypatch, gpus)
    calls: dict[str, list] = {"init": [], "set_device": []}
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(
        distributed.dist, "init_process_group", lambda backend: calls["init"].append(backend)
    )
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls["set_device"].append(str(d)))
    for key, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(key, value)
    info = distributed.setup(device)
    assert calls == {"init": [backend], "set_device": set_device}
    assert (info.rank, info.world_size, info.enabled) == (1, 2, True)
    assert ddp_backend(info.device) == backend


@pytest.mark.parametrize(("gpus", "device", "ok"), [(2, "cuda:1", True), (2, "cuda:2", False)])
def test_preflight_counts_the_visible_gpus(
    gpus: int, device: str, ok: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_gpus(monkeypatch, gpus)
    if ok:
        check_device("finetune", {"device": device})
    else:
        with pytest.raises(ConfigError, match=f"device={device} but this machine has 2 CUDA"):
            check_device("finetune", {"device": device})


# ---- RNG states with a fake torch.cuda ---------------------------------------------------------


def test_pretraining_saves_and_restores_this_gpus_rng(monkeypatch: pytest.MonkeyPatch) -> None:
    states = fake_gpus(monkeypatch, 2)
    info = DistInfo(device=torch.device("cuda", 1))
    saved = capture_rng(info)
    assert [s.tolist() for s in saved["cuda"]] == [[1]]  # this process's GPU, not GPU 0
    states[1] = torch.tensor([99], dtype=torch.uint8)
    cpu_before = torch.get_rng_state()
    torch.rand(3)  # moves the CPU stream too
    assert restore_rng(saved, info)
    assert states[1].tolist() == [1] and states[0].tolist() == [0]
    assert torch.equal(torch.get_rng_state(), cpu_before)
    assert not restore_rng({"cpu": saved["cpu"] * 2, "cuda": saved["cuda"] * 2}, info)


def tiny_sb3_model() -> SimpleNamespace:
    """What :func:`sb3_state.rng_state` reads of an SB3 model."""
    env = DummyVecEnv([lambda: gym.make("CartPole-v1")])
    env.reset()
    return SimpleNamespace(action_space=gym.spaces.Discrete(3), get_env=lambda: env)


@pytest.mark.parametrize(("saved_gpus", "restored"), [(2, True), (1, False)])
def test_sb3_resume_restores_gpu_streams_only_onto_as_many_gpus(
    saved_gpus: int,
    restored: bool,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    states = fake_gpus(monkeypatch, saved_gpus)
    saved = sb3_state.rng_state(tiny_sb3_model())
    assert [s.tolist() for s in saved["cuda"]] == [[i] for i in range(saved_gpus)]
    states = fake_gpus(monkeypatch, 2)  # the machine it resumes on
    states[0] = torch.tensor([42], dtype=torch.uint8)
    with caplog.at_level(logging.WARNING):
        sb3_state.restore_rng(tiny_sb3_model(), saved)
    assert states[0].tolist() == ([0] if restored else [42])
    assert ("random streams restart" in caplog.text) is not restored


def test_seeded_torch_seeds_and_restores_only_its_own_devices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    states = fake_gpus(monkeypatch, 2)
    generators = (torch.Generator(), torch.Generator())
    monkeypatch.setattr(torch.cuda, "default_generators", generators)
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: pytest.fail("seeded all"))
    with seeded_torch(5, "cpu"):  # a CPU critic leaves the GPUs alone
        first = torch.rand(2)
    with seeded_torch(5, "cuda:1"):
        assert generators[1].initial_seed() == 5 and generators[0].initial_seed() != 5
        assert torch.equal(torch.rand(2), first)
        states[1] = torch.tensor([7], dtype=torch.uint8)  # the block draws on GPU 1
    assert states[1].tolist() == [1]  # put back


# ---- placement on the meta device ------------------------------------------------------------


@pytest.fixture
def meta_generators(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch, "Generator", MetaSafeGenerator)


@pytest.mark.usefixtures("meta_generators")
def test_batched_trainer_keeps_everything_on_its_device() -> None:
    trainer = batched_trainer(tiny_transformer(), device="meta")
    meta = {torch.device("meta")}
    assert devices_of(trainer.policy, trainer.prior, trainer.value_fn) == meta
    optimized = [
        p for o in (trainer.optimizer, trainer.value_optimizer) for p in o.param_groups[0]["params"]
    ]
    assert {p.device for p in optimized} == meta
    assert trainer.strikes.device == torch.device("meta")


@pytest.mark.usefixtures("meta_generators")
def test_rl_tuner_trainer_keeps_everything_on_its_device() -> None:
    trainer = rl_tuner_trainer(tiny_transformer(), device="meta")
    meta = {torch.device("meta")}
    assert devices_of(trainer.q_network, trainer.target_network, trainer.prior) == meta
    assert {p.device for p in trainer.optimizer.param_groups[0]["params"]} == meta
    kept = [v for v in vars(trainer.replay).values() if isinstance(v, torch.Tensor)]
    assert kept and {t.device for t in kept} == meta  # the replay lives beside the networks
    assert trainer.precision == "fp32"  # no autocast on meta


def test_pretrainer_keeps_its_model_on_its_device(tmp_path: Path) -> None:
    trainer = pretrainer(tiny_transformer(), tmp_path, torch.device("meta"))
    assert devices_of(trainer.model) == {torch.device("meta")}
    assert {p.device for p in trainer.optimizer.param_groups[0]["params"]} == {torch.device("meta")}
    trainer.close()
