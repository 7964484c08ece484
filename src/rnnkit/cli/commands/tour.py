"""``rnnkit tour``: train a small model for every application and write one HTML report."""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

from rnnkit.cli.common import TourContext, non_negative_int, resolve_device
from rnnkit.files import write_json
from rnnkit.report import Section, write_report

NAME = "tour"
HELP = "train every application on its bundled data and write a report (DIR/index.html)"
ORDER = 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        NAME,
        help=HELP,
        description=HELP,
        epilog="examples:\n  rnnkit tour --out tour\n  rnnkit tour --out tour --quick"
        "\n  rnnkit tour --out tour --only forecast,music",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", default="tour", help="report folder (default: tour)")
    parser.add_argument("--quick", action="store_true", help="about a minute instead of ten")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--only", default=None, help="comma-separated sections to run")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rnnkit.cli import command_modules

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(args.device)
    modules = [m for m in command_modules() if hasattr(m, "tour")]
    if args.only:
        wanted = {name.strip() for name in args.only.split(",")}
        unknown = wanted - {m.NAME for m in modules}
        if unknown:
            from rnnkit.errors import UserError

            names = ", ".join(m.NAME for m in modules)
            raise UserError(
                f"--only: unknown section(s) {', '.join(sorted(unknown))}; expected some of {names}"
            )
        modules = [m for m in modules if m.NAME in wanted]

    sections: list[Section] = []
    summary = {}
    start = time.perf_counter()
    for module in modules:
        print(f"== tour: {module.NAME}", flush=True)
        ctx = TourContext(out=out / module.NAME, quick=args.quick, seed=args.seed, device=device)
        ctx.out.mkdir(parents=True, exist_ok=True)
        began = time.perf_counter()
        try:
            section = module.tour(ctx)
        except Exception as error:  # one broken section must not sink the report
            traceback.print_exc(file=sys.stderr)
            section = Section(title=module.NAME, error=f"{type(error).__name__}: {error}")
        section.seconds = time.perf_counter() - began
        summary[module.NAME] = {
            "seconds": round(section.seconds, 1),
            "error": section.error,
            "left_out": section.left_out,
        }
        for reason in section.left_out:
            print(f"   {module.NAME}: left out: {reason}", flush=True)
        sections.append(section)
        print(f"   {module.NAME}: {section.seconds:.1f} s", flush=True)
        # Rewrite the report after every section, so a long tour can be watched.
        write_report(out / "index.html", "rnnkit tour", sections)

    total = time.perf_counter() - start
    intro = Section(title="About this report").text(
        f"Every section trained a small rnnkit model on real bundled data "
        f"({'quick' if args.quick else 'full'} mode, seed {args.seed}, device {device}); "
        f"the whole tour took {total:.0f} s."
    )
    left_out = [f"{s.title}: {reason}" for s in sections for reason in s.left_out]
    if left_out:
        intro.text(
            "Not everything could run on this machine. Left out, and why: " + "; ".join(left_out)
        )
    else:
        intro.text("Every section ran in full: nothing was left out.")
    write_report(out / "index.html", "rnnkit tour", [intro, *sections])
    write_json(out / "metrics.json", {"total_seconds": round(total, 1), "sections": summary})
    print(f"wrote {out / 'index.html'} in {total:.0f} s")
    failed = [name for name, s in summary.items() if s["error"]]
    if failed:
        print(f"sections that failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
