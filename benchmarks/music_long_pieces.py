"""A folder of long multi-part pieces no rnnkit model was tuned on, as a user would bring it.

The README's figures for piano rolls on long pieces (2026-12-01: GRU + MADE 4.29 nats per step
against frame repeat's 5.18 on the held-out pieces) come from this folder: music21's corpus
movements by composers rnnkit does not bundle (20 Monteverdi madrigals, Josquin, 5 Mozart,
4 Haydn, 1 Beethoven), written as MIDI files by music21, then the default training:

    python benchmarks/music_long_pieces.py --out /tmp/long_pieces
    rnnkit music train --data /tmp/long_pieces --out /tmp/long_pieces_model
"""

from __future__ import annotations

import argparse
from pathlib import Path


def pieces() -> list[tuple[str, object]]:
    """(composer, corpus path) of every piece written."""
    from music21 import corpus

    monteverdi = [
        p
        for p in corpus.getComposer("monteverdi")
        if str(p).endswith(".mxl") and "_old" not in str(p)
    ]
    beethoven = [p for p in corpus.getComposer("beethoven") if str(p).endswith(".mxl")]
    return [
        *(("monteverdi", p) for p in monteverdi[:20]),
        *(("josquin", p) for p in corpus.getComposer("josquin")),
        *(("mozart", p) for p in corpus.getComposer("mozart")[:5]),
        *(("haydn", p) for p in corpus.getComposer("haydn")[:4]),
        ("beethoven", beethoven[2]),
    ]


def main() -> None:
    from music21 import converter

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for the MIDI files")
    out = Path(parser.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    for composer, path in pieces():
        name = f"{composer}_{Path(path).parent.name}_{Path(path).stem}.mid".replace(" ", "_")
        converter.parse(path).write("midi", fp=str(out / name))
        print(name, flush=True)


if __name__ == "__main__":
    main()
