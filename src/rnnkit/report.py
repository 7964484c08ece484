"""A small HTML report: sections with text, tables, images and links to produced files.

`rnnkit tour` and the `evaluate` commands build one; it is a plain, self-contained page
that a person opens in a browser (images are linked files beside index.html).
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path

from rnnkit.files import write_text


@dataclass
class Section:
    """One part of a report. Paths are relative to the report's folder (or absolute)."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[tuple[str, list[dict]]] = field(default_factory=list)
    images: list[tuple[str, str]] = field(default_factory=list)  # (path, caption)
    files: list[tuple[str, str]] = field(default_factory=list)  # (path, description)
    audio: list[tuple[str, str]] = field(default_factory=list)  # (path, caption)
    seconds: float | None = None
    error: str | None = None
    left_out: list[str] = field(default_factory=list)  # what could not run here, and why

    def leave_out(self, reason: str) -> Section:
        """Record that (part of) this section could not run here, e.g. a missing package.

        The tour lists every such reason at the top of its report, so a skipped part is never
        mistaken for a result.
        """
        self.left_out.append(reason)
        return self

    def text(self, paragraph: str) -> Section:
        self.paragraphs.append(paragraph)
        return self

    def table(self, rows: list[dict], caption: str = "") -> Section:
        self.tables.append((caption, rows))
        return self

    def image(self, path: str | os.PathLike, caption: str = "") -> Section:
        self.images.append((os.fspath(path), caption))
        return self

    def file(self, path: str | os.PathLike, description: str = "") -> Section:
        self.files.append((os.fspath(path), description))
        return self


def format_value(value: object) -> str:
    """Numbers with 4 significant digits, everything else as text."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def some_of(names: list[str], shown: int = 3) -> str:
    """The first few ``names`` for a one-line message: ``a.txt, b.txt, c.txt, ...``."""
    return ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")


def table_to_text(rows: list[dict]) -> str:
    """Render rows (dicts with the same keys) as an aligned plain-text table."""
    if not rows:
        return "(no rows)"
    columns = list(rows[0].keys())
    for row in rows[1:]:
        columns += [c for c in row if c not in columns]
    cells = [[format_value(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def _table_html(caption: str, rows: list[dict]) -> str:
    if not rows:
        return ""
    columns = list(rows[0].keys())
    for row in rows[1:]:
        columns += [c for c in row if c not in columns]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(format_value(r.get(c, '')))}</td>" for c in columns)
        + "</tr>"
        for r in rows
    )
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _relative(path: str, root: Path) -> str:
    p = Path(path)
    if p.is_absolute():
        try:
            return os.path.relpath(p, root)
        except ValueError:
            return p.as_uri()
    return path


def _section_html(section: Section, root: Path) -> str:
    anchor = "".join(ch if ch.isalnum() else "-" for ch in section.title.lower())
    parts = [f'<section id="{anchor}"><h2>{html.escape(section.title)}</h2>']
    if section.seconds is not None:
        parts.append(f'<p class="meta">{section.seconds:.1f} s</p>')
    if section.error:
        parts.append(f'<p class="error">{html.escape(section.error)}</p>')
    parts += [f'<p class="left-out">Left out: {html.escape(r)}</p>' for r in section.left_out]
    parts += [f"<p>{html.escape(p)}</p>" for p in section.paragraphs]
    parts += [_table_html(cap, rows) for cap, rows in section.tables]
    for path, caption in section.images:
        src = html.escape(_relative(path, root))
        parts.append(
            f'<figure><img src="{src}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    for path, caption in section.audio:
        src = html.escape(_relative(path, root))
        parts.append(f'<p>{html.escape(caption)}<br><audio controls src="{src}"></audio></p>')
    if section.files:
        items = "".join(
            f'<li><a href="{html.escape(_relative(p, root))}">{html.escape(Path(p).name)}</a>'
            f" {html.escape(d)}</li>"
            for p, d in section.files
        )
        parts.append(f"<ul>{items}</ul>")
    parts.append("</section>")
    return "\n".join(parts)


_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;
text-align:right}th{background:#f3f3f3}caption{text-align:left;font-weight:bold;padding:.3em 0}
img{max-width:100%;border:1px solid #ddd}figure{margin:1em 0}.meta{color:#777}
.error{color:#b00;font-weight:bold}.left-out{color:#a60;font-weight:bold}nav a{margin-right:1em}
"""


def write_report(path: str | os.PathLike, title: str, sections: list[Section]) -> Path:
    """Write a self-contained HTML page with a table of contents; return its path."""
    path = Path(path)
    root = path.parent
    nav = " ".join(
        f'<a href="#{"".join(ch if ch.isalnum() else "-" for ch in s.title.lower())}">'
        f"{html.escape(s.title)}</a>"
        for s in sections
    )
    body = "\n".join(_section_html(s, root) for s in sections)
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<nav>{nav}</nav>{body}</body></html>\n"
    )
    write_text(path, page)
    return path
