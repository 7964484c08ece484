"""Placeholders in software strings: translations with and without numbered markers.

Message catalogs (gettext ``.mo`` files) that Debian packages install under
``/usr/share/locale/<lang>/LC_MESSAGES`` hold English interface strings and their
translations, many with placeholders (``%s``, ``%d``, ``%(name)s``, ``{0}``) that a program
fills in. This reads them (single messages of 2-25 words, no plurals, no line breaks, one
pair per English string, shuffled with seed 0; which pairs exist depends on the packages
installed), keeps 4,000 as a user's file, splits them as ``rnnkit translate train --pairs``
does (5% validation, 5% held out, seed 0) and trains the CLI's defaults twice: with
placeholder markers (``TranslatorConfig.placeholders``, the default) and without. On the
held-out pairs it reports BLEU, chrF and, over the pairs whose source has placeholders, the
share of translations holding exactly the source's placeholders (with markers: always, as
`placeholders.unmask` completes them; so also how many the network wrote itself).
``metrics.json`` in ``--out``; about 6 minutes on 2 cores:

    python benchmarks/translate_placeholders.py --lang es --out results/translate-placeholders
"""

from __future__ import annotations

import argparse
import gettext
import json
import random
from collections import Counter
from pathlib import Path

import sacrebleu

from rnnkit.apps.translate import Translator, TranslatorConfig
from rnnkit.apps.translate.placeholders import MARKER, PLACEHOLDER
from rnnkit.data.parallel import SentencePair, split_pairs

PAIRS = 4000


def catalog_pairs(lang: str) -> list[SentencePair]:
    """(English, translation) of every installed catalog of ``lang``, cleaned, one per source."""
    found = []
    for path in sorted(Path(f"/usr/share/locale/{lang}/LC_MESSAGES").glob("*.mo")):
        try:
            with open(path, "rb") as handle:
                catalog = gettext.GNUTranslations(handle)._catalog
        except (OSError, ValueError):
            continue
        for source, target in catalog.items():
            if isinstance(source, tuple) or not source or not target:
                continue  # plural forms, the header
            source = source.split("\x04", 1)[-1].strip()  # without its context
            target = target.strip()
            words = len(source.split())
            if source == target or not 2 <= words <= 25:
                continue
            if any(c in source + target for c in "\n\t"):
                continue
            found.append(SentencePair(source, target))
    random.Random(0).shuffle(found)
    seen, unique = set(), []
    for pair in found:
        if pair.source not in seen:
            seen.add(pair.source)
            unique.append(pair)
    return unique


def kept_placeholders(sources: list[str], translations: list[str]) -> tuple[int, int]:
    """(translations with exactly their source's placeholders, sources with placeholders)."""
    kept = total = 0
    for source, translation in zip(sources, translations, strict=True):
        wanted = Counter(PLACEHOLDER.findall(source))
        if wanted:
            total += 1
            kept += Counter(PLACEHOLDER.findall(translation)) == wanted
    return kept, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lang", default="es")
    parser.add_argument("--out", default="results/translate-placeholders")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # one group per line, as `rnnkit translate train --pairs` reads a file
    pairs = [
        SentencePair(p.source, p.target, f"line{i}")
        for i, p in enumerate(catalog_pairs(args.lang)[:PAIRS], start=1)
    ]
    splits = split_pairs(pairs, valid_fraction=0.05, test_fraction=0.05, seed=0)
    sources = [p.source for p in splits["test"]]
    references = [p.target for p in splits["test"]]
    report = {"lang": args.lang, "pairs": len(pairs), **{k: len(v) for k, v in splits.items()}}
    for markers in (False, True):
        translator = Translator(
            TranslatorConfig(source_lang="", target_lang="", placeholders=markers)
        )
        translator.fit(splits["train"], splits["valid"], epochs=8, seed=0)
        translations = translator.translate(sources)
        kept, total = kept_placeholders(sources, translations)
        row = {
            "bleu": sacrebleu.corpus_bleu(translations, [references]).score,
            "chrf": sacrebleu.corpus_chrf(translations, [references]).score,
            "placeholders_kept": kept,
            "with_placeholders": total,
        }
        if markers:  # how many the network wrote itself, before `unmask` completed them
            prepared, found = translator._prepared(sources)
            written = translator._decode(prepared, 5, 1.0, 64)
            row["markers_written_exactly"] = sum(
                bool(f) and Counter(MARKER.findall(w)) == Counter(map(str, range(1, len(f) + 1)))
                for w, f in zip(written, found, strict=True)
            )
        report["markers" if markers else "no_markers"] = row
        print(json.dumps(report), flush=True)
    (out / "metrics.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
