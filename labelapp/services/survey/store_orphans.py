"""Cutout-store directories that nothing owns: found, listed, removed.

A killed ingest (SIGKILL, out of memory, a lost machine) cannot run its cleanup, so its
temporary store directory stays on the shared storage. Ingest removes this host's dead
writers' directories before it starts; ``manage.py store_orphans`` lists every orphan
(also committed directories no batch row points at) and removes them with ``--remove``.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from labelapp.models import IngestBatch
from mlcore.store import Orphan, find_orphans, remove_store


def find_store_orphans(*, min_age_s: float = 3600.0) -> list[Orphan]:
    """Orphans under ``settings.STORE_ROOT``, including unreferenced batch directories."""
    root = Path(settings.STORE_ROOT)
    known = {Path(p).name for p in IngestBatch.objects.values_list("store_path", flat=True)}
    return find_orphans(root, batch_dirs=known, min_age_s=min_age_s)


def remove_store_orphans(*, min_age_s: float = 3600.0, temporary_only: bool = False) -> list:
    """Remove the orphans :func:`find_store_orphans` finds; returns what was removed."""
    if temporary_only:
        orphans = find_orphans(Path(settings.STORE_ROOT), min_age_s=min_age_s)
    else:
        orphans = find_store_orphans(min_age_s=min_age_s)
    for orphan in orphans:
        remove_store(orphan.path)
    return orphans
