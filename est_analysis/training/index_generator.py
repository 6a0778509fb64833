"""The asynchronous index generator of appendix B.3: a background thread draws the subnets of
the coming steps (and moves their indices to the training device) into a bounded queue, so
the training loop never waits for sampling."""

from __future__ import annotations

import queue
import threading

import torch

from est_analysis.methods import SubnetPolicy
from est_analysis.subnet import Subnet


class IndexGenerator:
    """Subnets of steps `start, start+1, ..., stop-1`, produced `depth` steps ahead."""

    def __init__(self, policy: SubnetPolicy, start: int, stop: int, depth: int = 8,
                 device: torch.device | str = "cpu") -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._next = start
        self._thread = threading.Thread(target=self._fill, args=(policy, start, stop, device),
                                        daemon=True, name="est-index-generator")
        self._thread.start()

    def _fill(self, policy: SubnetPolicy, start: int, stop: int, device: torch.device | str) -> None:
        for step in range(start, stop):
            try:
                item = (step, policy.subnet(step).to(device))
            except Exception as err:  # surfaced to the training loop by get()
                item = (step, err)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if self._stop.is_set() or isinstance(item[1], Exception):
                return

    def get(self, step: int) -> Subnet:
        """The subnet of `step`; steps must be requested in order."""
        if step != self._next:
            raise RuntimeError(f"index generator asked for step {step}, expected {self._next}")
        produced, subnet = self._queue.get()
        assert produced == step, (produced, step)
        if isinstance(subnet, Exception):
            raise subnet
        self._next += 1
        return subnet

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def __enter__(self) -> "IndexGenerator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
