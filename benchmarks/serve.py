"""Load test and fuzz run of ``rnnkit serve`` on loopback, and ONNX vs PyTorch latency.

Starts ``rnnkit serve MODEL_DIR...`` in a child process on a free loopback port, then:

1. load: for each cheap route, ``--clients`` concurrent clients send ``--requests`` requests in
   all (keep-alive connections); throughput, p50 / p99 latency and the count of 5xx answers;
2. fuzz: ``--fuzz`` malformed requests (broken JSON, wrong fields and types, out-of-range
   values, unknown or path-traversing model names, garbage uploads, missing token...) drawn
   with a fixed seed; every one must get a 4xx and the server must stay up;
3. with ``--onnx``: `rnnkit.export.benchmark.latency_ratio` for each folder with an ONNX
   export (``rnnkit export DIR``), at batch 1 and 32.

Example (the README's table):
    rnnkit tour --out tour --quick
    python benchmarks/serve.py tour/models/sentiment tour/models/translate tour/models/lm \
        --out results/serve
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

TOKEN = "bench-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(folders: list[str], port: int, log: Path) -> subprocess.Popen:
    """``rnnkit serve`` in a child process (one inference thread per model, as deployed);
    its output goes to ``log``."""
    command = [sys.executable, "-m", "rnnkit.cli", "serve", *folders, "--port", str(port)]
    env = {**os.environ, "RNNKIT_TOKEN": TOKEN}
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited; see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not become ready in 120 s")


# ------------------------------------------------------------------------------ load test


def cheap_routes(models: list[dict]) -> list[tuple[str, str, dict | None]]:
    """(label, path, JSON body or None for GET) of each route cheap enough to hammer."""
    routes = [("GET /health", "/health", None), ("GET /v1/models", "/v1/models", None)]
    for m in models:
        base = f"/v1/models/{m['name']}"
        if m["app"] == "sentiment":
            routes.append(
                (f"classify ({m['name']})", base + "/classify", {"texts": ["A witty film."]})
            )
        elif m["app"] == "translate":
            body = {"sentences": ["And God said."], "beam": 1}
            routes.append((f"translate, greedy ({m['name']})", base + "/translate", body))
        elif m["app"] == "lm":
            body = {"prompt": "And God", "max_tokens": 16, "stream": False}
            routes.append((f"generate 16 tokens ({m['name']})", base + "/generate", body))
    return routes


async def load(url: str, path: str, body: dict | None, clients: int, requests: int) -> dict:
    """``requests`` calls from ``clients`` concurrent clients; latency per call."""
    latencies: list[float] = []
    statuses: list[int] = []
    remaining = iter(range(requests))
    headers = {"Authorization": f"Bearer {TOKEN}"}

    dropped = 0

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal dropped
        for _ in remaining:
            began = time.perf_counter()
            for attempt in range(2):
                try:
                    answer = await http.request(
                        "GET" if body is None else "POST", path, json=body, headers=headers
                    )
                    break
                except (httpx.ReadError, httpx.RemoteProtocolError):
                    # A keep-alive connection the server closed just as it was reused (the
                    # HTTP/1.1 race every client meets): counted, then tried once more.
                    dropped += 1
                    if attempt:
                        raise
            latencies.append(time.perf_counter() - began)
            statuses.append(answer.status_code)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as http:
        began = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        seconds = time.perf_counter() - began
    ms = np.array(latencies) * 1000
    return {
        "requests": requests,
        "clients": clients,
        "seconds": round(seconds, 2),
        "requests_per_s": round(requests / seconds, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "2xx": sum(200 <= s < 300 for s in statuses),
        "4xx": sum(400 <= s < 500 for s in statuses),
        "5xx": sum(s >= 500 for s in statuses),
        "connections_dropped": dropped,
    }


# ------------------------------------------------------------------------------ fuzzing


def malformed_requests(models: list[dict], count: int, seed: int = 0) -> list[dict]:
    """``count`` requests that are all wrong in some way (each must get a 4xx)."""
    rng = random.Random(seed)
    by_app = {m["app"]: m["name"] for m in models}
    auth = {"Authorization": f"Bearer {TOKEN}"}
    json_posts = {  # app -> (route, a valid body to break)
        "sentiment": ("classify", {"texts": ["good film"]}),
        "translate": ("translate", {"sentences": ["And God said."], "beam": 2}),
        "lm": ("generate", {"prompt": "And", "max_tokens": 5, "stream": False}),
        "forecast": ("forecast", {"rows": [{"time": "2024-01-01", "y": 1.0}]}),
        "anomaly": ("detect", {"values": [1.0, 2.0]}),
        "music": ("compose", {"bars": 1}),
    }
    uploads = {"speech": "transcribe", "caption": "caption", "forecast": "forecast/file"}
    names = ["../../etc/passwd", "..%2F..%2Fetc", "nope", "%00", "a" * 300, ".", "sentiment/.."]

    def broken_body(body: dict) -> dict:
        """The body with one field removed, retyped or joined by an unknown field."""
        body = dict(body)
        key = rng.choice(list(body))
        kind = rng.randrange(3)
        if kind == 0:
            body.pop(key)
            body["unexpected"] = 1  # a dropped optional field alone would still be valid
        elif kind == 1:  # a value of a type the field never accepts
            wrong = (
                [None, 7, {}, [[1]], True] if isinstance(body[key], str) else [None, "x" * 9, {}]
            )
            body[key] = rng.choice(wrong)
        else:
            body["unexpected_" + str(rng.randrange(100))] = rng.choice([None, 1, "x"])
        return body

    makers = []
    for app, (route, body) in json_posts.items():
        if app in by_app:
            path = f"/v1/models/{by_app[app]}/{route}"
            makers.append(lambda p=path, b=body: {"path": p, "json": broken_body(b)})
            makers.append(
                lambda p=path: {"path": p, "content": rng.randbytes(rng.randrange(1, 200))}
            )
            makers.append(lambda p=path, b=body: {"path": p, "json": b, "headers": {}})
    for app, route in uploads.items():
        if app in by_app:
            path = f"/v1/models/{by_app[app]}/{route}"
            makers.append(
                lambda p=path: {
                    "path": p,
                    "files": {"file": ("x.bin", rng.randbytes(rng.randrange(0, 3000)))},
                }
            )
    makers.append(
        lambda: {"path": f"/v1/models/{rng.choice(names)}/classify", "json": {"texts": ["a"]}}
    )
    makers.append(lambda: {"path": "/v1/no/such/route", "json": {}})
    requests = []
    for _ in range(count):
        request = rng.choice(makers)()
        request.setdefault("headers", auth)
        requests.append(request)
    return requests


async def fuzz(url: str, requests: list[dict], clients: int = 8) -> dict:
    statuses: list[int] = []
    bad: list[str] = []
    queue = iter(requests)

    async def client(http: httpx.AsyncClient) -> None:
        for r in queue:
            answer = await http.post(
                r["path"],
                json=r.get("json"),
                content=r.get("content"),
                files=r.get("files"),
                headers=r["headers"],
            )
            statuses.append(answer.status_code)
            if not 400 <= answer.status_code < 500 and len(bad) < 5:
                bad.append(f"{answer.status_code} {r['path']}: {answer.text[:120]}")

    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
        alive = (await http.get("/health")).status_code == 200
    return {
        "requests": len(requests),
        "4xx": sum(400 <= s < 500 for s in statuses),
        "other": len(statuses) - sum(400 <= s < 500 for s in statuses),
        "server_up_after": alive,
        "examples_not_4xx": bad,
    }


# ------------------------------------------------------------------------------ main


def onnx_latency(folders: list[str]) -> list[dict]:
    """ONNX Runtime vs PyTorch (EXPORT's `latency_ratio`) for folders with an export."""
    try:
        from rnnkit.export.benchmark import latency_ratio
    except ImportError:
        return []
    from rnnkit.errors import UserError

    rows = []
    for folder in folders:
        if not (Path(folder) / "model.onnx.json").exists():
            continue
        for batch in (1, 32):
            try:
                rows.append({"model": folder, **latency_ratio(folder, batch_size=batch)})
            except UserError as error:  # e.g. an export older than the weights: say so
                rows.append({"model": folder, "batch_size": batch, "error": str(error)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="model folders to serve")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=2000, help="per route")
    parser.add_argument("--fuzz", type=int, default=1000, help="malformed requests")
    parser.add_argument("--onnx", action="store_true", help="also time ONNX vs PyTorch")
    parser.add_argument("--out", default=None, help="folder for metrics.json")
    args = parser.parse_args()

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = Path(args.out or tempfile.mkdtemp(prefix="rnnkit-bench-")) / "server.log"
    server = start_server(args.models, port, log)
    try:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        models = httpx.get(url + "/v1/models", headers=headers).json()["models"]
        rows = []
        for label, path, body in cheap_routes(models):
            result = asyncio.run(load(url, path, body, args.clients, args.requests))
            rows.append({"route": label, **result})
            print(json.dumps(rows[-1]), flush=True)
        fuzzed = asyncio.run(fuzz(url, malformed_requests(models, args.fuzz)))
        print(json.dumps({"fuzz": fuzzed}), flush=True)
        alive = server.poll() is None
    finally:
        server.terminate()
        server.wait(timeout=30)
    latency = onnx_latency(args.models) if args.onnx else []
    for row in latency:
        print(json.dumps(row), flush=True)
    result = {
        "load": rows,
        "fuzz": fuzzed,
        "server_process_alive": alive,
        "onnx": latency,
        "date": time.strftime("%Y-%m-%d"),
        "cpus": os.cpu_count(),
    }
    if args.out:
        from rnnkit.files import write_json

        write_json(Path(args.out) / "metrics.json", result)
    failed = any(r["5xx"] for r in rows) or fuzzed["other"] or not fuzzed["server_up_after"]
    sys.exit(1 if failed or not alive else 0)


if __name__ == "__main__":
    main()
