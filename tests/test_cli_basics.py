import subprocess
import sys

from rnnkit.cli import main


def test_help_lists_tour(capsys):
    try:
        main(["--help"])
    except SystemExit as exit:
        assert exit.code == 0
    assert "tour" in capsys.readouterr().out


def test_unknown_tour_section_is_a_user_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "rnnkit.cli", "tour", "--out", str(tmp_path), "--only", "nope"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("rnnkit: error: --only: unknown section")
    assert "Traceback" not in result.stderr


def test_tour_report_says_what_was_left_out_and_why(tmp_path, monkeypatch):
    import json

    import rnnkit.data.parallel

    monkeypatch.setattr(rnnkit.data.parallel, "sword_available", lambda *args: False)
    assert main(["tour", "--out", str(tmp_path), "--quick", "--only", "translate"]) == 0
    page = (tmp_path / "index.html").read_text()
    assert "Left out, and why: Machine translation" in page
    assert "sword-text-kjv" in page  # the package to install is named
    sections = json.loads((tmp_path / "metrics.json").read_text())["sections"]
    assert sections["translate"]["left_out"] and sections["translate"]["error"] is None


def test_system_package_script_is_what_ci_runs():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    script = (root / "scripts" / "system-packages.sh").read_text()
    assert "scripts/system-packages.sh" in (root / ".ci" / "run").read_text()
    for package in ("sword-text-web", "espeak-ng", "dataset-fashion-mnist", "chromium"):
        assert package in script


def test_every_step_of_make_results_is_a_valid_command():
    """`make results` runs for hours, so CI checks that each of its commands parses."""
    import shlex
    from pathlib import Path

    from rnnkit.cli import build_parser

    script = (Path(__file__).resolve().parents[1] / "scripts" / "results.sh").read_text()
    steps = [
        line.strip()[len("step ") :]
        for line in script.splitlines()
        if line.strip().startswith("step ")
    ]
    assert len(steps) >= 20
    parser = build_parser()
    for step in steps:
        argv = shlex.split(
            step.replace('"$out', '"results')
            .replace('"$models', '"results/models')
            .replace('"$fsdd"', "fsdd")
        )
        args = parser.parse_args(argv)
        assert callable(args.func), step
