"""RSS and CPU of every process of a run, sampled with psutil.

A target is a name and a root pid; with ``tree`` its children count too (PostgreSQL: the postmaster and
all its backends). CPU of a process that exits between samples keeps its last seen value, so a target's
CPU never goes backwards. RSS sums the tree's resident sets (PostgreSQL's shared buffers are counted in
every backend that touched them, so its sum overstates what the machine really spends).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import psutil


@dataclass
class Target:
    name: str
    pid: int
    tree: bool = False
    group: str = ""  # "service", "infra", "peer"
    cpu_seen: dict[int, float] = field(default_factory=dict)
    procs: dict[int, psutil.Process] = field(default_factory=dict)
    peak_rss: int = 0
    last_rss: int = 0
    alive: bool = True

    def _members(self) -> list[psutil.Process]:
        try:
            root = self.procs.get(self.pid) or psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return []
        members = [root]
        if self.tree:
            try:
                members += root.children(recursive=True)
            except psutil.NoSuchProcess:
                pass
        out = []
        for p in members:
            known = self.procs.get(p.pid)
            out.append(known if known is not None else p)
            self.procs.setdefault(p.pid, p)
        return out

    def sample(self) -> None:
        rss = 0
        members = self._members()
        if not members:
            self.alive = False
        for p in members:
            try:
                with p.oneshot():
                    rss += p.memory_info().rss
                    t = p.cpu_times()
                    self.cpu_seen[p.pid] = t.user + t.system
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue
        if members:
            self.last_rss = rss
            self.peak_rss = max(self.peak_rss, rss)

    @property
    def cpu(self) -> float:
        return sum(self.cpu_seen.values())


class Sampler:
    def __init__(self, interval_s: float = 0.5) -> None:
        self.interval_s = interval_s
        self.targets: dict[str, Target] = {}
        self.series: list[tuple[float, dict[str, int]]] = []  # (monotonic, rss by target)
        self.keep_series = False
        self._task: asyncio.Task[None] | None = None

    def add(self, name: str, pid: int, tree: bool = False, group: str = "") -> Target:
        t = Target(name, pid, tree, group)
        self.targets[name] = t
        t.sample()
        return t

    def remove(self, name: str) -> None:
        self.targets.pop(name, None)

    def sample(self) -> None:
        for t in list(self.targets.values()):
            t.sample()
        if self.keep_series:
            self.series.append((time.monotonic(), {n: t.last_rss for n, t in self.targets.items()}))

    def reset_peaks(self) -> None:
        for t in self.targets.values():
            t.sample()
            t.peak_rss = t.last_rss

    def cpu(self) -> dict[str, float]:
        self.sample()
        return {n: t.cpu for n, t in self.targets.items()}

    async def _loop(self) -> None:
        while True:
            await asyncio.to_thread(self.sample)
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
