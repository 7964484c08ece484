"""How a new speaker's word error rate depends on the number of real training speakers.

A diagnostic, not a choice: it reports, it decides nothing. For each held-out FSDD speaker
named, the protocol's fold (`rnnkit.apps.speech.fsdd`, its one recipe, seed 0) is trained on
the first k of the other speakers (in `Protocol.speakers` order) for each k asked, with the
same synthetic speech, and tested on all of the held-out speaker's recordings. k = 5 is the
protocol's own fold (`rnnkit speech evaluate --data ../shared/data/fsdd --folds NAME`).
Each run reads a folder of links to the chosen speakers' files, so it is the command a
user runs on a folder of their own.

Usage:
    python benchmarks/speech_speakers.py --held-out lucas --counts 1,2,3,4 --out results/speakers
    python benchmarks/speech_speakers.py --held-out theo --counts 1 --quick --out /tmp/speakers

Writes ``OUT/NAME-kK/metrics.json`` for every run and ``OUT/speakers-NAME.json``:
``{k: {"isolated": WER, "strings": WER, "training speakers": [...]}}`` with the grammar.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from rnnkit.apps.speech.fsdd import Protocol
from rnnkit.cli import main as rnnkit
from rnnkit.data.speech import find_fsdd


def linked_folder(source: Path, speakers: list[str], folder: Path) -> Path:
    """``folder`` holding links to the recordings of ``speakers`` only."""
    recordings = source / "recordings" if (source / "recordings").is_dir() else source
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted(recordings.glob("*.wav")):
        parts = path.stem.split("_")
        if len(parts) == 3 and parts[1] in speakers and not (folder / path.name).exists():
            os.symlink(path.resolve(), folder / path.name)
    return folder


def run(source: Path, held_out: str, count: int, out: Path, quick: bool) -> dict:
    """Train the fold of ``held_out`` on ``count`` other speakers; its WERs with the grammar."""
    others = [s for s in Protocol().speakers if s != held_out][:count]
    data = linked_folder(source, [held_out, *others], out / "data" / f"{held_out}-k{count}")
    target = out / f"{held_out}-k{count}"
    args = ["speech", "evaluate", "--data", str(data), "--part", "loso", "--folds", held_out]
    args += ["--no-pocketsphinx", "--out", str(target)] + (["--quick"] if quick else [])
    if rnnkit(args) != 0:
        raise SystemExit(f"the run of {held_out} with {count} training speakers failed")
    row = json.loads((target / "metrics.json").read_text())["loso"][0]
    return {
        "isolated": row["isolated: rnnkit (digits grammar)"],
        "strings": row["strings: rnnkit (digits grammar)"],
        "training speakers": others,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--held-out", required=True, help="an FSDD speaker, e.g. lucas")
    parser.add_argument("--counts", default="1,2,3,4", help="numbers of training speakers")
    parser.add_argument("--data", default=None, help="the FSDD folder (default: found)")
    parser.add_argument("--out", default="results/speech_speakers")
    parser.add_argument("--quick", action="store_true", help="the protocol's --quick sizes")
    args = parser.parse_args()
    source = Path(args.data) if args.data else find_fsdd()
    if source is None:
        raise SystemExit("no FSDD folder: pass --data PATH")
    out = Path(args.out)
    results = {}
    for count in [int(c) for c in args.counts.split(",")]:
        results[count] = run(source, args.held_out, count, out, args.quick)
        print(f"{args.held_out}, {count} training speakers: {results[count]}", flush=True)
        (out / f"speakers-{args.held_out}.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
