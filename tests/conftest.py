import os

import pytest

# Tests run on a small shared machine: one thread per test process keeps `pytest -n 2` fair
# and the numbers reproducible.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture
def refused_at_parsing(capsys):
    """``refused_at_parsing(argv)`` runs ``rnnkit ARGV`` and asserts that argparse refused it
    (exit status 2, nothing on stdout, so nothing ran); returns its stderr line."""
    from rnnkit.cli import main

    def run(argv: list[str]) -> str:
        with pytest.raises(SystemExit) as stopped:
            main(list(argv))
        captured = capsys.readouterr()
        assert stopped.value.code == 2 and captured.out == ""
        return captured.err

    return run
