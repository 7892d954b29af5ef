"""Which value estimate for the PPO learners: fit each design to the same returns, measure.

The returns are those `algo=ppo` and the batched `method=ppo` regress at their start: pieces
sampled from the shipped Note LSTM, scored by the default reward (``reward=default``), discounted
at gamma 0.5 (the shipped value). Each design trains for the same number of Adam steps on the
same minibatches and is judged on held-out pieces by explained variance (1 - Var[G - V] / Var[G]).
The ``shared`` row trains the old design (a linear head on the generator's hidden state, the
value loss flowing into the generator) and reports how far the value loss alone moved the
*policy*: the KL per token between the generator before and after, on held-out pieces.

    python scripts/bench_value.py [--pieces 2048] [--steps 300] [--threads 2]
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_module
from torch import nn

from rlmusic.algos.advantages import discounted_returns
from rlmusic.algos.finetune_setup import build_setup
from rlmusic.algos.value import ValueFunction, explained_variance
from rlmusic.models.base import with_bos
from rlmusic.models.sampling import sample_with_log_probs


class LinearValue(nn.Module):
    """The old head: linear on the hidden state, raw targets (optionally shared with the body)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, hidden: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.linear(hidden).squeeze(-1)

    def loss(self, hidden: torch.Tensor, positions: torch.Tensor, returns: torch.Tensor):
        return F.mse_loss(self(hidden, positions), returns)

    def update_statistics(self, returns: torch.Tensor) -> None:
        pass


class Unnormalised(ValueFunction):
    """The shipped MLP with its step embedding, but regressing raw returns (no PopArt)."""

    def update_statistics(self, returns: torch.Tensor) -> None:
        pass


def _undetached(value: ValueFunction):
    """The shipped head's forward without its detach (for the separate critic's own body)."""

    def normalized(hidden: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(value.features(hidden.float()) + value.position(positions.long()))
        return value.out(h).squeeze(-1)

    return normalized


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pieces", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-trained-body", action="store_true", help="skip the slow rows whose body trains"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose("finetune")
    setup = build_setup(cfg.checkpoint, cfg.reward, "/tmp/rlmusic-bench-value", device="cpu")
    generator = setup.generator.eval()
    rng = torch.Generator().manual_seed(args.seed)
    tokens, _ = sample_with_log_probs(generator, args.pieces + 512, 32, rng)
    rewards = torch.as_tensor(setup.reward.score(tokens.numpy())[0], dtype=torch.float32)
    returns = discounted_returns(rewards, 0.5)  # (N, T)
    positions = torch.arange(32).expand(len(tokens), -1)
    train, held = slice(0, args.pieces), slice(args.pieces, None)
    print(
        f"returns: mean {returns.mean():.2f}, std {returns.std():.2f} (gamma 0.5, reward=default)"
    )

    def hidden_of(model: nn.Module, rows: torch.Tensor) -> torch.Tensor:
        return model.forward_with_hidden(with_bos(rows, model.bos_token))[1]

    with torch.no_grad():
        frozen_hidden = hidden_of(generator, tokens)
        held_logp = F.log_softmax(generator(with_bos(tokens[held], generator.bos_token)), -1)
    size = frozen_hidden.shape[-1]
    # name: (value module, its body: "shared" the policy's generator, "copy" a copy of it that
    # only the value trains (TRL's separate critic), None the frozen policy's hidden states)
    designs: dict[str, tuple[nn.Module, str | None]] = {
        "shared linear (old; value loss into the generator)": (LinearValue(size), "shared"),
        "separate critic: a copy of the generator + the shipped head": (
            ValueFunction(size, 32),
            "copy",
        ),
        "detached linear, raw returns": (LinearValue(size), None),
        "detached MLP + step embedding, raw returns": (Unnormalised(size, 32), None),
        "detached MLP + step embedding + PopArt (shipped)": (ValueFunction(size, 32), None),
    }
    print("| design | held-out explained variance | policy moved (KL/token) | s |")
    print("|---|---|---|---|")
    for name, (value, kind) in designs.items():
        if kind and args.no_trained_body:
            continue
        shared = kind is not None  # a body that trains (the policy's own, or a copy)
        body = copy.deepcopy(generator) if shared else generator
        if kind == "copy":  # the body's own hidden states reach the head undetached
            value.normalized = _undetached(value)
        params = list(value.parameters()) + (list(body.parameters()) if shared else [])
        optimizer = torch.optim.Adam(params, lr=1e-3, eps=1e-5)
        batch_rng = np.random.default_rng(args.seed)
        started = time.perf_counter()
        value.update_statistics(returns[train])
        for _ in range(args.steps):
            rows = torch.as_tensor(batch_rng.choice(args.pieces, 64, replace=False))
            hidden = hidden_of(body, tokens[rows]) if shared else frozen_hidden[rows]
            loss = value.loss(hidden, positions[rows], returns[rows])
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, 1.0)  # the old design: one clip over both
            optimizer.step()
        seconds = time.perf_counter() - started
        with torch.no_grad():
            hidden = hidden_of(body, tokens[held]) if shared else frozen_hidden[held]
            ev = explained_variance(value(hidden, positions[held]), returns[held])
            moved = 0.0
            if kind == "shared":
                logp = F.log_softmax(body(with_bos(tokens[held], body.bos_token)), -1)
                moved = float((logp.exp() * (logp - held_logp)).sum(-1).mean())
        print(f"| {name} | {ev:.3f} | {moved:.4f} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
