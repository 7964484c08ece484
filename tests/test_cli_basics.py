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
