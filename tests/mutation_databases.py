"""A database per concurrent test session under mutation testing (``make mutate``).

mutmut runs a pytest session per mutant, ``MUTATE_JOBS`` of them at once, each in a process forked
from mutmut's own (which runs sessions too). Sessions sharing one database block each other: a test
inserting the same user as a test in the other session waits for that test's transaction to end,
so the runs went one at a time with lock waits on top. Instead, scripts/mutate.py creates
``MUTATION_DATABASE_SLOTS`` copies of the migrated test database (``<name>_slot0``, ``_slot1``, …),
and each process takes the first copy no other live process holds: a non-blocking ``flock`` on a
file per copy, held until the process ends (so a crashed session frees its copy). A process keeps
its copy for every session it runs.
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
from pathlib import Path
from typing import IO, Any

SLOTS_VARIABLE = "MUTATION_DATABASE_SLOTS"
_SUFFIX = re.compile(r"_slot\d+$")

# (process id, slot, the open lock file): a forked child inherits its parent's and claims its own.
_held: tuple[int, int, IO[str]] | None = None


def slot_count() -> int:
    """How many copies scripts/mutate.py made (0: not under mutation testing)."""
    return int(os.environ.get(SLOTS_VARIABLE, "0") or 0)


def slot_name(test_name: str, slot: int) -> str:
    return f"{_SUFFIX.sub('', test_name)}_slot{slot}"


def _claim(base: str, slots: int) -> int:
    """This process's slot: the one it already holds, else the first free one (locked until it ends)."""
    global _held
    if _held is not None and _held[0] == os.getpid():
        return _held[1]
    folder = Path(tempfile.gettempdir()) / "medorder-mutation-slots"
    folder.mkdir(exist_ok=True)
    for slot in range(slots):
        lock = (folder / f"{base}-{slot}.lock").open("w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        _held = (os.getpid(), slot, lock)
        return slot
    raise RuntimeError(f"All {slots} mutation test databases are in use; raise {SLOTS_VARIABLE}.")


def use_own_database(databases: dict[str, dict[str, Any]]) -> int | None:
    """Point every test database of ``databases`` (settings.DATABASES) at this process's copy; the slot, or None."""
    slots = slot_count()
    if not slots:
        return None
    base = _SUFFIX.sub("", databases["default"]["TEST"]["NAME"])
    slot = _claim(base, slots)
    for database in databases.values():
        database["TEST"]["NAME"] = slot_name(database["TEST"]["NAME"], slot)
    return slot
