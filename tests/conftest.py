import os

# Tests run on a small shared machine: one thread per test process keeps `pytest -n 2` fair
# and the numbers reproducible.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
