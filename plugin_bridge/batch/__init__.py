"""Batch-apply mixes to a whole catalog: resumable (SQLite ledger), isolated, on all cores or on Dask.

`run_batch` is the API; ``plugin-bridge batch`` and ``render_scripts/batch_mix.py`` call it.
"""

from __future__ import annotations

from .items import Item, find_items
from .ledger import Ledger
from .runner import BatchOptions, BatchSummary, run_batch

__all__ = ["BatchOptions", "BatchSummary", "Item", "Ledger", "find_items", "run_batch"]
