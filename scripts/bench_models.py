"""Benchmarks of the two generators; prints small tables (never a pass/fail on wall time).

    python scripts/bench_models.py --train     training tokens/s (forward + backward + AdamW)
    python scripts/bench_models.py --sample    batch 256 x 256 steps: cached/stateful vs full
                                               recomputation each step; tokens/s at batch 1, 256
    python scripts/bench_models.py --batch1    batch-1 sampling, 256 steps, cached vs recompute
    python scripts/bench_models.py --eval      shipped models: validation NLL / perplexity /
                                               accuracy against unigram and bigram baselines on
                                               the same split, and the sample checks (1,000 x 32
                                               steps: notes outside C major, repeated notes)
    (no flag: all three)   --threads N (torch CPU threads, default 2)

Models are the shipped configurations (random weights for --train and --sample, the shipped
weights for --eval), on CPU unless --device says otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

from rlmusic.data.encoding import NO_EVENT, MelodyEncoding
from rlmusic.models import PRETRAINED, load_pretrained
from rlmusic.models.checkpoint import build_model, read_record
from rlmusic.models.registry import pretrained_path
from rlmusic.models.sampling import generate, generate_recompute
from rlmusic.pretraining.config import TrainConfig
from rlmusic.pretraining.optim import make_optimizer
from rlmusic.pretraining.validation import evaluate_tunes
from rlmusic.rewards.statistics import Statistic, composition_stats

# the shipped configurations and the windows they train on (scripts/build_pretrained.sh)
SHIPPED = {
    "note_lstm": ("lstm", dict(embed_dim=64, hidden_size=256, num_layers=2, dropout=0.1), 128),
    "music_transformer": (
        "transformer",
        dict(d_model=128, n_heads=4, n_layers=4, d_ff=512, dropout=0.1, max_relative_position=64),
        64,
    ),
}


def fresh_model(name: str, device: str) -> torch.nn.Module:
    arch, config, _ = SHIPPED[name]
    torch.manual_seed(0)
    return build_model(arch, {**config, "vocab_size": 38}).to(device)


def timed(fn: Callable[[], object], repeat: int = 1) -> float:
    """Best wall time of ``repeat`` calls (seconds)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).rjust(w) for c, w in zip(r, widths))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


# ---- training -----------------------------------------------------------------------------------
def train_tokens_per_s(
    model: torch.nn.Module, window: int, batch: int, steps: int, device: str
) -> float:
    """Tokens per second of full optimizer steps (forward, backward, clipping, AdamW)."""
    model.train()
    optimizer = make_optimizer(model, TrainConfig())
    x = torch.randint(0, 39, (batch, window), device=device)
    y = torch.randint(0, 38, (batch, window), device=device)

    def one_step() -> None:
        logits = model(x)  # (B, L, V)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 38), y.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    one_step()  # warm-up
    return steps * batch * window / timed(lambda: [one_step() for _ in range(steps)])


def bench_train(device: str, steps: int = 6, batch: int = 64) -> None:
    rows = []
    for name, (_, _, window) in SHIPPED.items():
        model = fresh_model(name, device)
        params = sum(p.numel() for p in model.parameters())
        speed = train_tokens_per_s(model, window, batch, steps, device)
        rows.append([name, f"{params / 1e6:.2f}M", f"{batch}x{window}", f"{speed:,.0f}"])
    print(f"\ntraining throughput ({torch.get_num_threads()} threads, {device})")
    print(table(rows, ["model", "params", "batch", "tokens/s"]))


# ---- sampling -----------------------------------------------------------------------------------
def sampling_seconds(
    model: torch.nn.Module, batch: int, length: int, cached: bool, device: str, repeat: int = 1
) -> float:
    """Best time to sample (batch, length) from BOS, incrementally or recomputing each step."""

    def run() -> None:
        rng = torch.Generator(device=device).manual_seed(0)
        if cached:
            generate(model, batch, length, rng, batch_size=batch, device=device)
        else:
            generate_recompute(model, batch, length, rng, device=device)

    return timed(run, repeat)


def bench_sample(device: str, batch: int = 256, length: int = 256, quick: bool = False) -> None:
    """``quick`` recomputes only the first 64 steps (and compares with 64 cached steps)."""
    rows = []
    full_len = 64 if quick else length
    for name in SHIPPED:
        model = fresh_model(name, device).eval()
        cached = sampling_seconds(model, batch, length, True, device)
        cached_part = sampling_seconds(model, batch, full_len, True, device) if quick else cached
        full = sampling_seconds(model, batch, full_len, False, device)
        cached_1 = sampling_seconds(model, 1, length, True, device, repeat=3)
        full_1 = sampling_seconds(model, 1, full_len, False, device, repeat=3)
        rows.append(
            [
                name,
                f"{cached:.2f}",
                f"{full:.2f}" + (f" ({full_len} steps)" if quick else ""),
                f"{full / cached_part:.1f}x",
                f"{length / cached_1:,.0f}",
                f"{full_len / full_1:,.0f}",
                f"{batch * length / cached:,.0f}",
                f"{batch * full_len / full:,.0f}",
            ]
        )
    print(f"\nsampling {batch} x {length} steps ({torch.get_num_threads()} threads, {device})")
    header = ["model", "cached s", "recompute s", "speed-up", "tok/s b=1 cached"]
    header += ["tok/s b=1 recompute", f"tok/s b={batch} cached", f"tok/s b={batch} recompute"]
    print(table(rows, header))


def bench_batch1(device: str, length: int = 256) -> None:
    """One composition at a time (an interactive user, a single RL environment)."""
    rows = []
    for name in SHIPPED:
        model = fresh_model(name, device).eval()
        cached = sampling_seconds(model, 1, length, True, device, repeat=5)
        full = sampling_seconds(model, 1, length, False, device, repeat=3)
        rows.append(
            [name, f"{length / cached:,.0f}", f"{length / full:,.0f}", f"{full / cached:.1f}x"]
        )
    print(f"\nsampling 1 x {length} steps ({torch.get_num_threads()} threads, {device})")
    print(table(rows, ["model", "tok/s cached", "tok/s recompute", "speed-up"]))


# ---- shipped models: validation and sample checks -----------------------------------------------
def repeated_run_share(tokens: np.ndarray, encoding: MelodyEncoding, limit: int = 4) -> float:
    """Share of notes inside runs of more than ``limit`` strikes of one pitch (only holds
    between strikes; a rest or another pitch ends a run) -- every note of such a run counts."""
    in_runs, notes = 0, 0
    for piece in tokens:
        pitch_of = encoding.pitches(piece)
        run, previous, gap_clean = 0, -1, True
        for token, pitch in zip(piece.tolist(), pitch_of.tolist()):
            if pitch < 0:
                gap_clean = gap_clean and token == NO_EVENT
                continue
            notes += 1
            if pitch == previous and gap_clean:
                run += 1
            else:
                in_runs += run if run > limit else 0
                run = 1
            previous, gap_clean = pitch, True
        in_runs += run if run > limit else 0
    return in_runs / max(1, notes)


def bench_eval(device: str, n: int = 1000, length: int = 32) -> None:
    from rlmusic.data.prepare import prepare_corpus
    from rlmusic.pretraining.windows import ngram_baselines

    encoding = MelodyEncoding()
    corpus = prepare_corpus({"source": "all", "split_seed": 0}, encoding, progress=False)
    train, valid = corpus.tunes("train"), corpus.tunes("valid")
    base = ngram_baselines(train, valid, encoding.vocab_size)
    rows = [
        ["unigram (add-0.1)", "-", f"{base['unigram_nll']:.4f}", f"{base['unigram_ppl']:.3f}"],
        ["bigram (add-0.1)", "-", f"{base['bigram_nll']:.4f}", f"{base['bigram_ppl']:.3f}"],
    ]
    checks = []
    for name in PRETRAINED:
        model, enc = load_pretrained(name, device=device)
        info = read_record(pretrained_path(name)).get("info", {})
        window = int(info.get("window", SHIPPED[name][2]))
        m = evaluate_tunes(model, valid, window, device=device)
        common = evaluate_tunes(model, valid, 64, device=device)  # the same context for both
        cost = f"{info.get('train_seconds', float('nan')) / 60:.1f} min, {info.get('train_tokens', 0) / 1e6:.1f}M tok"
        rows.append(
            [
                name,
                str(window),
                f"{m['valid_nll']:.4f}",
                f"{m['valid_ppl']:.3f}",
                f"{m['valid_acc']:.3f}",
                f"{common['valid_nll']:.4f}",
                cost,
            ]
        )
        samples = generate(
            model, n, length, torch.Generator(device=device).manual_seed(0), device=device
        )
        stats = composition_stats(samples, enc).table()
        checks.append(
            [
                name,
                f"{stats[Statistic.NOTES_NOT_IN_KEY]:.2%}",
                f"{repeated_run_share(samples, enc):.2%}",
                f"{stats[Statistic.NOTES_EXCESSIVELY_REPEATED]:.2%}",
                f"{len({r.tobytes() for r in samples}) / n:.1%}",
            ]
        )
    print(f"\nvalidation split: {len(valid)} tunes, {base['tokens']:,} tokens (data=all, seed 0)")
    header = ["model", "window", "NLL/token", "perplexity", "accuracy", "NLL @64", "training cost"]
    print(table([r + ["-"] * (len(header) - len(r)) for r in rows], header))
    print(f"\n{n} samples of {length} steps from BOS (temperature 1, seed 0)")
    print(
        table(
            checks,
            [
                "model",
                "notes outside C major",
                "notes in runs > 4",
                "5th+ strikes (RL Tuner)",
                "distinct",
            ],
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train", action="store_true")
    parser.add_argument("--sample", action="store_true")
    parser.add_argument("--eval", action="store_true")
    parser.add_argument("--batch1", action="store_true", help="batch-1 sampling only, 256 steps")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="recompute only 64 steps in --sample")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    everything = not (args.train or args.sample or args.eval or args.batch1)
    if args.train or everything:
        bench_train(args.device)
    if args.sample or everything:
        bench_sample(args.device, quick=args.quick)
    if args.batch1:
        bench_batch1(args.device)
    if args.eval or everything:
        bench_eval(args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
