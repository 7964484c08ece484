"""Event models sampled with and without `EventGrammar` (note-offs only for sounding notes).

Generates the same number of pieces each way from one trained event model, with the same
seeds, and compares their statistics with the model's training pieces (`compare_to_corpus`:
pitch range, polyphony, notes per quarter, consonance, pitch-class distance). It chooses
nothing: the grammar only rules out events the decoder would ignore. The README's figures
(2026-12-02, seed 0, CPU):

    python benchmarks/music_long_pieces.py --out long/
    rnnkit music train --data long/ --model-type events --epochs 10 --out models/events
    python benchmarks/music_event_grammar.py --model models/events --out results/event-grammar
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rnnkit.apps.music import workflow
from rnnkit.apps.music.stats import compare_to_corpus
from rnnkit.apps.music.tokens import TokenLM
from rnnkit.files import write_json
from rnnkit.report import table_to_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a folder written by 'music train'")
    parser.add_argument("--count", type=int, default=10, help="pieces each way")
    parser.add_argument("--bars", type=float, default=8)
    parser.add_argument("--tempo", type=float, default=110.0)
    parser.add_argument("--out", default="results/event-grammar")
    args = parser.parse_args()
    model, config = workflow.load(args.model)
    if not isinstance(model, TokenLM) or model.config.encoding != "events":
        raise SystemExit(f"{args.model}: not an event model (train with --model-type events)")
    pieces = workflow.load_corpus(config["data"], config.get("limit"), warn=None)
    training = workflow.split(pieces, config.get("split_seed", 0), config.get("split_by", "piece"))
    reference = [model.round_trip(piece) for piece in training[0]]
    generated = {
        label: [
            model.generate(bars=args.bars, tempo_bpm=args.tempo, seed=seed, grammar=grammar)
            for seed in range(args.count)
        ]
        for label, grammar in (("sampled freely", False), ("with the grammar", True))
    }
    rows = compare_to_corpus(generated, reference, "training pieces (model's grid)")
    print(table_to_text(rows))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", {"model": args.model, "bars": args.bars, "rows": rows})


if __name__ == "__main__":
    main()
