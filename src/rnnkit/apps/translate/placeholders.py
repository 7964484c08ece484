"""Placeholders (``%s``, ``%(name)d``, ``%1$s``, ``%1``, ``{0}``, ``{name}``) pass through
translation unchanged.

Software strings carry placeholders that a program fills in, and a translation that mangles
one breaks the program (an audit's 4,000 Debian message pairs: 83 of 149 test sentences with
placeholders lost or changed one). So before training and before translating, each
placeholder of a source sentence becomes a numbered marker (``⟨1⟩``, ``⟨2⟩``, ... in order of
appearance), which the subword vocabulary learns like a word; the same placeholder in the
target sentence gets the same marker (so a translation may reorder them); and the markers of
a translation are replaced by the source's placeholders, each exactly once (`unmask`). Text
without placeholders is not touched (the Bible pairs train exactly as before).

    >>> masked, found = mask("Delete %s from {folder}?")
    >>> masked, found
    ('Delete ⟨1⟩ from ⟨2⟩?', ['%s', '{folder}'])
    >>> mask_pair("Copy %1$s to %2$s", "Copiar a %2$s desde %1$s")
    ('Copy ⟨1⟩ to ⟨2⟩', 'Copiar a ⟨2⟩ desde ⟨1⟩')
    >>> unmask("¿Borrar ⟨2⟩ de ⟨1⟩?", found)     # {folder} is named: it may move
    '¿Borrar {folder} de %s?'
    >>> mask("100% sure, 50%% off")[1]   # a percent sign is not a placeholder
    []
"""

from __future__ import annotations

import re

PLACEHOLDER = re.compile(
    # Python's named conversions: %(name)s, %(count)5.2f
    r"(?<!%)%\([A-Za-z_][A-Za-z0-9_]*\)[-+#0]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]"
    # C / gettext: %s, %d, %5.2f, %ld, %1$s, %'d (no space flag: "50% off" is prose)
    r"|(?<!%)%(?:\d+\$)?[-+#0']*(?:\d+|\*)?(?:\.(?:\d+|\*))?(?:hh|h|ll|l|L|z|j|t)?[diouxXeEfFgGcsp]"
    # Qt: %1, %2
    r"|(?<!%)%\d+"
    # Python / .NET / ICU braces: {}, {0}, {name}, {0:.2f}, {name!r}
    r"|\{[A-Za-z0-9_]*(?:[:!][^{}\s]*)?\}"
)
MARKER = re.compile(r"⟨(\d+)⟩")
# Placeholders that name their argument: a translation may put them in any order.
POSITIONAL = re.compile(r"%\d+\$|%\(|%\d+$|\{[A-Za-z0-9_]")


def mask(text: str) -> tuple[str, list[str]]:
    """``text`` with its placeholders replaced by ``⟨1⟩``, ``⟨2⟩``, ..., and the placeholders."""
    found: list[str] = []

    def number(match: re.Match) -> str:
        found.append(match.group(0))
        return f"⟨{len(found)}⟩"

    return PLACEHOLDER.sub(number, text), found


def mask_pair(source: str, target: str) -> tuple[str, str]:
    """A training pair with the source's placeholders numbered, and each placeholder of the
    target given the number of the same placeholder in the source (one it has not already
    matched); a target placeholder that the source lacks is left as it is."""
    masked_source, found = mask(source)
    if not found:
        return source, target
    unused = list(enumerate(found, start=1))

    def number(match: re.Match) -> str:
        for position, (index, placeholder) in enumerate(unused):
            if placeholder == match.group(0):
                del unused[position]
                return f"⟨{index}⟩"
        return match.group(0)

    return masked_source, PLACEHOLDER.sub(number, target)


def unmask(text: str, found: list[str]) -> str:
    """``text`` (a translation of a masked sentence) with its markers replaced by ``found``,
    the source's placeholders, so that the translation holds each exactly once.

    A positional or named placeholder (``%1$s``, ``%(name)s``, ``{0}``, ``{name}``, ``%1``)
    goes where its number is. The others (``%s``, ``%d``, ``{}``) are filled in by the
    program in order, so they go to the markers in the order the markers appear, whatever
    their numbers: a ``%d`` never swaps places with a ``%s``. Markers beyond the
    placeholders are dropped, and placeholders the translation left out are appended at its
    end (a small network on a few thousand pairs drops some: a misplaced placeholder is
    better than a program that fails).

        >>> unmask("¿Borrar ⟨1⟩ de ⟨2⟩? ⟨2⟩", ["%s", "{folder}"])
        '¿Borrar %s de {folder}?'
        >>> unmask("⟨2⟩ en ⟨1⟩", ["%s", "%d"])          # in order, not by number
        '%s en %d'
        >>> unmask("borrado", ["%s"])
        'borrado %s'
    """
    if not found and "⟨" not in text:
        return text
    in_order = [i for i, placeholder in enumerate(found) if not POSITIONAL.match(placeholder)]
    placed: set[int] = set()

    def placeholder(match: re.Match) -> str:
        index = int(match.group(1)) - 1
        if 0 <= index < len(found) and POSITIONAL.match(found[index]):
            chosen = index if index not in placed else None
        else:
            chosen = in_order.pop(0) if in_order else None
        if chosen is None:
            return ""
        placed.add(chosen)
        return found[chosen]

    words = MARKER.sub(placeholder, text).split()
    return " ".join(words + [p for i, p in enumerate(found) if i not in placed])
