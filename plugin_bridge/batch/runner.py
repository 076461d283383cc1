"""Run a batch: find items, skip finished ones, run the rest isolated on all cores or on Dask.

Engines: ``local`` forks one child per item (up to ``workers`` at once) from this process; ``dask``
sends items to a Dask cluster (a LocalCluster of ``workers`` single-threaded processes, or an
existing scheduler by address), where each task forks the same isolated child. Either way the
parent is the ledger's only writer, failures are retried up to ``retries`` times, and the run ends
with reports and a summary.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import PluginBridgeError
from .isolate import Outcome, run_isolated
from .items import Item, find_items
from .jobs import JobOptions, process_item
from .ledger import Ledger
from .report import write_reports

ENGINES = ("local", "dask")


@dataclass
class BatchOptions:
    """A batch run: where, how many workers, which engine, retries and timeout (s) per item."""

    source: str
    out_dir: str
    job: JobOptions
    workers: int = 0  # 0: all cores
    engine: str = "local"
    scheduler: str | None = None  # dask scheduler address; None: a LocalCluster
    retries: int = 1
    timeout: float | None = 600.0
    progress: bool | None = None
    retry_failed: bool = False


@dataclass
class BatchSummary:
    """How a batch ended."""

    total: int
    done: int
    failed: int
    skipped: int
    seconds: float
    failures: list[tuple[str, str]] = field(default_factory=list)
    reports: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no item failed."""
        return self.failed == 0


def _job(arg: tuple[Item, JobOptions]) -> dict:
    item, opts = arg
    return process_item(item, opts)


def _isolated_one(item: Item, opts: JobOptions, timeout: float | None) -> Outcome:
    """Run one item in a forked child (used inside Dask workers)."""
    return next(run_isolated(_job, [(item.id, (item, opts))], 1, timeout))


def _local(items: list[Item], opts: JobOptions, workers: int, timeout: float | None) -> Iterator[Outcome]:
    yield from run_isolated(_job, [(it.id, (it, opts)) for it in items], workers, timeout)


def _dask(items: list[Item], opts: JobOptions, workers: int, timeout: float | None, address: str | None):
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise PluginBridgeError("the dask engine needs: pip install 'plugin-bridge[dask]'") from None
    cluster = None
    if address:
        client = Client(address)
    else:
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
    try:
        futures = [
            client.submit(_isolated_one, it, opts, timeout, key=f"item-{i}", pure=False)
            for i, it in enumerate(items)
        ]
        for fut in as_completed(futures):
            try:
                yield fut.result()
            except Exception as e:  # a worker lost: the task is reported, the batch goes on
                idx = futures.index(fut)
                yield Outcome(items[idx].id, False, None, f"dask worker failed: {type(e).__name__}: {e}", 0.0)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _bar(total: int, enabled: bool | None):
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled or total == 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="song", desc="batch", file=sys.stderr)


def run_batch(options: BatchOptions) -> BatchSummary:
    """Run (or resume) a batch; returns its summary. Finished items are never redone."""

    if options.engine not in ENGINES:
        raise PluginBridgeError(f"unknown engine {options.engine!r}; valid: {', '.join(ENGINES)}")
    out = Path(options.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    items = find_items(options.source, out)
    ledger = Ledger(out / "batch.sqlite")
    start = time.perf_counter()
    try:
        ledger.add(items)
        ledger.recover()
        if options.retry_failed:
            ledger.retry_failed()
        todo = [it for it in items if ledger.status(it.id) == "pending"]
        skipped = len(items) - len(todo)
        workers = options.workers or os.cpu_count() or 1
        by_id = {it.id: it for it in items}
        bar = _bar(len(todo), options.progress)
        round_items = todo
        while round_items:
            for it in round_items:
                ledger.started(it.id)
            if options.engine == "dask":
                outcomes = _dask(round_items, options.job, workers, options.timeout, options.scheduler)
            else:
                outcomes = _local(round_items, options.job, workers, options.timeout)
            again = []
            for oc in outcomes:
                if oc.ok:
                    ledger.finished(oc.key, oc.result or {}, oc.seconds)
                else:
                    final = ledger.attempts(oc.key) > options.retries
                    ledger.failed(oc.key, oc.error or "unknown error", oc.seconds, final)
                    if not final:
                        again.append(by_id[oc.key])
                        continue
                if bar:
                    bar.update(1)
            round_items = again
        if bar:
            bar.close()
        rows = ledger.rows()
        reports = write_reports(rows, out)
    finally:
        ledger.close()
    failures = [(r["id"], r["error"] or "") for r in rows if r["status"] == "failed"]
    done = sum(1 for r in rows if r["status"] == "done")
    return BatchSummary(
        len(items), done, len(failures), skipped, time.perf_counter() - start, failures, reports
    )
