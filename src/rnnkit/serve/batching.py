"""Dynamic micro-batching and the one worker thread of each model.

Every served model owns a `ModelWorker`: a single thread that runs all of that model's
inference, one call at a time, under ``torch.inference_mode()``. One thread per model keeps
stateful models (a language model's carried state) safe and leaves the event loop free.

A `MicroBatcher` sits in front of a worker: the first request to arrive waits up to
``wait_s`` for others, then up to ``max_batch`` items from any number of clients run as one
call (one padded batch through the network), and each client gets its own results back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch


class ModelWorker:
    """Runs functions on one thread, under ``torch.inference_mode()`` unless asked not to."""

    def __init__(self, name: str):
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"rnnkit-{name}")

    async def run(self, fn: Callable[..., Any], *args: Any, grad: bool = False) -> Any:
        """``fn(*args)`` on the model's thread; ``grad=True`` for gradient saliency."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, _call, fn, args, grad)

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Start ``fn(*args)`` on the model's thread without waiting (a streaming generator)."""
        self._executor.submit(_call, fn, args, False)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _call(fn: Callable[..., Any], args: tuple, grad: bool) -> Any:
    context = torch.enable_grad() if grad else torch.inference_mode()
    with context:
        return fn(*args)


class MicroBatcher:
    """Collects concurrent items into batches for ``run_batch(items) -> results``.

    Args:
        run_batch: maps a list of items to a list of results of the same length; runs on
            ``worker``'s thread.
        worker: the model's `ModelWorker`.
        max_batch: most items per call.
        wait_s: how long the first item of a batch waits for company.

    Example (three requests that arrive together share one call):
        >>> import asyncio
        >>> worker = ModelWorker("lengths")
        >>> batcher = MicroBatcher(lambda texts: [len(t) for t in texts], worker, 32, 0.005)
        >>> async def three_clients():
        ...     return await asyncio.gather(*(batcher.submit(t) for t in ("a", "bb", "ccc")))
        >>> asyncio.run(three_clients()), batcher.batch_sizes
        ([1, 2, 3], [3])
        >>> worker.close()
    """

    def __init__(
        self,
        run_batch: Callable[[list], Sequence],
        worker: ModelWorker,
        max_batch: int,
        wait_s: float,
    ):
        self.run_batch, self.worker = run_batch, worker
        self.max_batch, self.wait_s = max(1, max_batch), max(0.0, wait_s)
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self.batch_sizes: list[int] = []  # the size of every call made (tests read this)

    async def submit(self, item: Any) -> Any:
        """The result for ``item``, computed in a batch with whatever else arrived meanwhile."""
        if self._task is None or self._task.done():
            self._queue = asyncio.Queue()
            self._task = asyncio.create_task(self._serve())
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.wait_s
            while len(batch) < self.max_batch:
                remaining = deadline - loop.time()
                if remaining <= 0 and self._queue.empty():
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), max(remaining, 0)))
                except TimeoutError:
                    break
            live = [(item, future) for item, future in batch if not future.done()]
            if live:
                await self._run(live)

    async def _run(self, live: list[tuple[Any, asyncio.Future]]) -> None:
        self.batch_sizes.append(len(live))
        try:
            results = await self.worker.run(self.run_batch, [item for item, _ in live])
        except Exception as error:
            if len(live) == 1:
                if not live[0][1].done():
                    live[0][1].set_exception(error)
                return
            # One bad item must not fail its neighbours: run them one by one to find it.
            for pair in live:
                await self._run([pair])
            return
        for (_, future), result in zip(live, results, strict=True):
            if not future.done():
                future.set_result(result)
