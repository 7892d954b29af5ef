"""NoteLSTM and MusicTransformer: the Generator protocol, cache equivalence, sampling."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from rlmusic.models import (
    Generator,
    LSTMConfig,
    MusicTransformer,
    NoteLSTM,
    TransformerConfig,
    generate,
    prefill,
    sequence_log_probs,
    with_bos,
)
from rlmusic.models.sampling import filter_logits, generate_recompute


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models on a shared 2-core machine: two OpenMP threads mostly wait for each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_lstm(seed: int = 0, **kw) -> NoteLSTM:
    torch.manual_seed(seed)
    return NoteLSTM(LSTMConfig(embed_dim=8, hidden_size=16, num_layers=2, **kw)).eval()


def tiny_transformer(seed: int = 0, **kw) -> MusicTransformer:
    torch.manual_seed(seed)
    cfg = dict(d_model=16, n_heads=2, n_layers=2, d_ff=32, max_relative_position=16)
    cfg.update(kw)
    return MusicTransformer(TransformerConfig(**cfg)).eval()


MODELS = {"lstm": tiny_lstm, "transformer": tiny_transformer}


@pytest.fixture(params=list(MODELS), ids=list(MODELS))
def model(request: pytest.FixtureRequest) -> torch.nn.Module:
    return MODELS[request.param]()


def random_melodies(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 38, (batch, length), generator=torch.Generator().manual_seed(seed))


def test_implements_the_generator_protocol(model: torch.nn.Module) -> None:
    assert isinstance(model, Generator)
    assert model.bos_token == model.vocab_size == 38
    tokens = with_bos(random_melodies(3, 10), model.bos_token)
    logits, hidden = model.forward_with_hidden(tokens)
    assert logits.shape == (3, 10, 38) and hidden.shape[:2] == (3, 10)
    torch.testing.assert_close(model(tokens), logits)
    assert sequence_log_probs(model, random_melodies(3, 10)).shape == (3, 10)


# 80 steps: past the Transformer's relative-distance table (16) and its first cache buffer (64)
@pytest.mark.parametrize("length", [1, 5, 80])
def test_incremental_step_equals_forward(model: torch.nn.Module, length: int) -> None:
    tokens = with_bos(random_melodies(4, length, seed=length), model.bos_token)  # (4, T)
    with torch.no_grad():
        full = model(tokens)  # (4, T, V)
        state, stepped = None, []
        for t in range(length):
            logits, state = model.step(tokens[:, t], state)
            stepped.append(logits)
    torch.testing.assert_close(torch.stack(stepped, 1), full, rtol=0, atol=1e-5)


@pytest.mark.parametrize("batch", [1, 40], ids=["lstm_cell", "nn.LSTM"])
def test_lstm_step_paths_equal_forward(batch: int) -> None:
    """Small batches step through torch.lstm_cell per layer, large ones through nn.LSTM."""
    model = tiny_lstm()
    tokens = with_bos(random_melodies(batch, 9, seed=batch), model.bos_token)
    with torch.no_grad():
        full = model(tokens)
        state, stepped = None, []
        for t in range(9):
            logits, state = model.step(tokens[:, t], state)
            stepped.append(logits)
    torch.testing.assert_close(torch.stack(stepped, 1), full, rtol=0, atol=1e-5)


# 3: the LSTM's short-prefix cell path; 20: nn.LSTM; 70: past the Transformer's first buffer
@pytest.mark.parametrize("prefix", [3, 20, 70])
def test_prefill_then_step_equals_forward(model: torch.nn.Module, prefix: int) -> None:
    tokens = with_bos(random_melodies(2, prefix + 5, seed=prefix), model.bos_token)
    with torch.no_grad():
        full = model(tokens)  # (2, T, V)
        logits, state = model.prefill(tokens[:, :prefix])
        torch.testing.assert_close(logits, full[:, :prefix], rtol=0, atol=1e-5)
        last, generic_state = prefill(model, tokens[:, :prefix])  # the same through the helper
        torch.testing.assert_close(last, full[:, prefix - 1], rtol=0, atol=1e-5)
        for t in range(prefix, prefix + 5):  # step goes on from the prefilled state
            logits, state = model.step(tokens[:, t], state)
            torch.testing.assert_close(logits, full[:, t], rtol=0, atol=1e-5)
        logits, _ = model.step(tokens[:, prefix], generic_state)
        torch.testing.assert_close(logits, full[:, prefix], rtol=0, atol=1e-5)


def test_prefill_helper_steps_generators_without_one() -> None:
    from tests.toy_generator import ToyGenerator

    toy = ToyGenerator().eval()
    tokens = with_bos(random_melodies(2, 6), toy.bos_token)
    with torch.no_grad():
        last, state = prefill(toy, tokens[:, :4])
        torch.testing.assert_close(last, toy(tokens)[:, 3], rtol=0, atol=1e-5)
        logits, _ = toy.step(tokens[:, 4], state)
        torch.testing.assert_close(logits, toy(tokens)[:, 4], rtol=0, atol=1e-5)


def test_forward_is_causal(model: torch.nn.Module) -> None:
    a = random_melodies(2, 12, seed=1)
    b = a.clone()
    b[:, 7:] = random_melodies(2, 5, seed=2)
    with torch.no_grad():
        torch.testing.assert_close(model(a)[:, :7], model(b)[:, :7])


def test_lstm_step_does_not_modify_its_state() -> None:
    model = tiny_lstm()
    token = torch.tensor([model.bos_token])
    with torch.no_grad():
        _, state = model.step(token, None)
        before = [s.clone() for s in state]
        first, _ = model.step(torch.tensor([5]), state)
        again, _ = model.step(torch.tensor([5]), state)
    torch.testing.assert_close(first, again)
    for a, b in zip(before, state):
        torch.testing.assert_close(a, b)


def test_kv_cache_clone_allows_branching() -> None:
    model = tiny_transformer()
    with torch.no_grad():
        _, cache = model.step(torch.tensor([model.bos_token]), None)
        branch = cache.clone()
        a, _ = model.step(torch.tensor([7]), cache)
        model.step(torch.tensor([9]), branch)
        b, _ = model.step(torch.tensor([7]), cache.clone())
    torch.testing.assert_close(a, b)


def test_transformer_rejects_bad_head_count() -> None:
    with pytest.raises(ValueError, match="multiple of n_heads"):
        MusicTransformer(TransformerConfig(d_model=10, n_heads=3))


def test_generate_is_seeded_and_keeps_the_primer(model: torch.nn.Module) -> None:
    kw = dict(n=5, length=12, primer=[14, 1, 16], batch_size=2)
    a = generate(model, rng=torch.Generator().manual_seed(3), **kw)
    b = generate(model, rng=torch.Generator().manual_seed(3), **kw)
    c = generate(model, rng=torch.Generator().manual_seed(4), **kw)
    assert a.shape == (5, 15) and a.dtype == np.int64
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert (a[:, :3] == [14, 1, 16]).all() and a.max() < 38


def test_generate_equals_full_recomputation(model: torch.nn.Module) -> None:
    cached = generate(model, 6, 20, torch.Generator().manual_seed(0))
    recomputed = generate_recompute(model, 6, 20, torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(cached, recomputed)


def test_greedy_and_top_k_one_agree(model: torch.nn.Module) -> None:
    greedy = generate(model, 2, 10, torch.Generator().manual_seed(0), temperature=0)
    top1 = generate(model, 2, 10, torch.Generator().manual_seed(1), top_k=1)
    np.testing.assert_array_equal(greedy, top1)


def test_filter_logits_top_k_and_top_p() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(filter_logits(logits, top_k=2)).tolist() == [[False, False, True, True]]
    kept = ~torch.isinf(filter_logits(logits, top_p=0.7))
    assert kept.tolist() == [[True, True, False, False]]  # 0.5 < 0.7 <= 0.5 + 0.3
    assert (~torch.isinf(filter_logits(logits, top_p=0.1))).sum() == 1  # the top one stays


@pytest.mark.parametrize("kw", [{"temperature": -1}, {"top_k": -1}, {"top_p": 0.0}])
def test_generate_rejects_bad_arguments(kw: dict) -> None:
    with pytest.raises(ValueError):
        generate(tiny_lstm(), 1, 2, torch.Generator(), **kw)


# ---- the shipped LSTM: the acceptance checks on its samples -----------------------------
def notes_in_long_runs(tokens: np.ndarray, limit: int = 4) -> float:
    """Share of notes inside runs of more than ``limit`` strikes of one pitch (holds between
    strikes keep a run going; a rest or another pitch ends it)."""
    in_runs = notes = 0
    for piece in tokens.tolist():
        run, previous, clean = 0, -1, True
        for token in piece:
            if token < 2:  # NOTE_OFF breaks a run, NO_EVENT (a hold) does not
                clean = clean and token == 1
                continue
            notes += 1
            if token == previous and clean:
                run += 1
            else:
                in_runs += run if run > limit else 0
                run = 1
            previous, clean = token, True
        in_runs += run if run > limit else 0
    return in_runs / max(1, notes)


def test_notes_in_long_runs_counts_whole_runs() -> None:
    assert notes_in_long_runs(np.array([[14, 1, 14, 14, 14, 14, 16]])) == pytest.approx(5 / 6)
    assert notes_in_long_runs(np.array([[14, 14, 0, 14, 14, 14, 14]])) == 0.0


def test_shipped_lstm_samples_stay_in_c_and_rarely_repeat() -> None:
    from rlmusic.models import load_pretrained
    from rlmusic.rewards.statistics import Statistic, composition_stats

    model, encoding = load_pretrained("note_lstm")
    samples = generate(model, 1000, 32, torch.Generator().manual_seed(0))
    assert composition_stats(samples, encoding).table()[Statistic.NOTES_NOT_IN_KEY] < 0.05
    assert notes_in_long_runs(samples) < 0.20


@pytest.mark.slow
@pytest.mark.parametrize("name", ["note_lstm", "music_transformer"])
def test_shipped_models_beat_the_bigram_baseline_clearly(name: str) -> None:
    """On the default corpus's validation split (parses the corpus if it is not cached)."""
    from hydra import compose, initialize_config_module

    from rlmusic.data.encodings import encoding_from_cfg
    from rlmusic.data.prepare import prepare_corpus
    from rlmusic.models import load_checkpoint, pretrained_path
    from rlmusic.pretraining.validation import evaluate_tunes
    from rlmusic.pretraining.windows import ngram_baselines

    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose("prepare_data")
    corpus = prepare_corpus(cfg.data, encoding_from_cfg(cfg.encoding), progress=False)
    bigram = ngram_baselines(corpus.tunes("train"), corpus.tunes("valid"), 38)["bigram_nll"]
    model, _, info = load_checkpoint(pretrained_path(name))
    result = evaluate_tunes(model, corpus.tunes("valid"), int(info.get("window", 128)))
    assert result["valid_nll"] < bigram - 0.3
