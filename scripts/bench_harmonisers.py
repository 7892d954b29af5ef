"""Which harmoniser design, by measurement: NLL of the chosen voices, cost per token, and the
voice-leading table of harmonisations of the held-out chorales' sopranos.

Two designs share one model class and vocabulary (rlmusic.data.harmonisation):
* ``forced``: a chorale generator writes the piece with the soprano's tokens forced; it sees the
  melody only up to the current step;
* ``conditioned``: a harmoniser first reads the whole soprano (``[S.., BOS]``), then writes the
  piece with the soprano forced.

    python scripts/bench_harmonisers.py --forced pretrained:chorale_lstm \
        --forced /tmp/control --conditioned pretrained:chorale_harmoniser --threads 1

``--forced`` models are scored on the same A/T/B tokens as the conditioned ones. Each model
harmonises every test-split chorale's first ``--steps`` steps ``--k`` times (seed 0).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--forced", action="append", default=[], help="a chorale generator")
    parser.add_argument("--conditioned", action="append", default=[], help="a harmoniser")
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--k", type=int, default=8, help="harmonisations per soprano")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from hydra import compose, initialize_config_dir

    from rlmusic.data.harmonisation import conditioning_prefix, forced_tokens, sopranos
    from rlmusic.data.prepare import prepare_corpus
    from rlmusic.evaluation.table_rows import table_for
    from rlmusic.models import load_generator
    from rlmusic.models.sampling import sample_with_log_probs
    from rlmusic.pretraining.harmoniser import lower_voice_nll

    root = __file__.rsplit("/scripts/", 1)[0]
    with initialize_config_dir(config_dir=f"{root}/conf", version_base=None):
        cfg = compose("pretrain", overrides=["data=chorales"])
    models = [(spec, False) for spec in args.forced] + [(s, True) for s in args.conditioned]
    encoding = load_generator(models[0][0])[1]
    corpus = prepare_corpus(cfg.data, encoding, progress=False)
    size = encoding.tokens_for(args.steps)
    test = [t[:size] for t in corpus.tunes("test") if len(t) >= size]
    bach = np.stack(test)
    given = np.repeat(sopranos(bach, encoding), args.k, axis=0)
    table = table_for(encoding)
    rows: dict[str, dict[str, float]] = {
        "Bach (test openings)": table.count(bach, encoding).table()
    }
    for spec, conditioned in models:
        model, _ = load_generator(spec)
        nll = {
            split: lower_voice_nll(model, corpus.tunes(split), encoding, conditioned=conditioned)[
                "valid_nll"
            ]
            for split in ("valid", "test")
        }
        prefix = torch.as_tensor(conditioning_prefix(given, encoding)) if conditioned else None
        forced = torch.as_tensor(forced_tokens(given, encoding))
        started = time.perf_counter()
        tokens, _ = sample_with_log_probs(
            model, len(given), size, torch.Generator().manual_seed(0), prefix=prefix, forced=forced
        )
        seconds = time.perf_counter() - started
        tokens = tokens.numpy()
        assert (tokens[:, ::4] == given).all(), "a soprano moved"
        name = f"{spec} ({'conditioned' if conditioned else 'forced'})"
        rows[name] = {
            "A/T/B NLL valid": nll["valid"],
            "A/T/B NLL test": nll["test"],
            "ms per written token": 1000 * seconds / (len(given) * size * 3 / 4),
            **table.count(tokens, encoding).table(),
        }
    names = list(rows)
    keys = list(dict.fromkeys(k for r in rows.values() for k in r))
    print(f"{len(test)} test sopranos x {args.k}, {args.steps} steps\n")
    print("| row | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
    for key in keys:
        cells = [rows[n].get(key) for n in names]
        shown = ["" if c is None else f"{c:.4g}" for c in cells]
        print(f"| {getattr(key, 'value', key)} | " + " | ".join(shown) + " |")


if __name__ == "__main__":
    main()
