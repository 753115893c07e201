"""Keep the agent's resident memory flat over days of churn (glibc only; elsewhere a no-op).

The agent runs blocking work (netlink, nft, /proc scans, Raft's thread) in a thread pool. glibc
gives each thread that allocates its own malloc arena and rarely hands freed arena pages back to
the kernel, so RSS ratchets up with every burst of work even though Python freed the objects.
Two arenas and a periodic `malloc_trim` keep RSS close to what is really in use.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging

from shoal.runtime.linux import libc

log = logging.getLogger("shoal.memory")

M_ARENA_MAX = -8  # from <malloc.h>
ARENAS = 2
TRIM_PERIOD = 30.0


def _libc() -> ctypes.CDLL | None:
    lib = libc()  # the process's own C library
    if not hasattr(lib, "mallopt") or not hasattr(lib, "malloc_trim"):
        return None  # musl and others: nothing to tune
    return lib


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Call before any thread starts; True when glibc took the setting."""
    libc = _libc()
    return bool(libc and libc.mallopt(M_ARENA_MAX, arenas) == 1)


def trim() -> bool:
    """Hand free heap pages back to the kernel; True when some were released."""
    libc = _libc()
    return bool(libc and libc.malloc_trim(0) == 1)


async def trim_forever(period: float = TRIM_PERIOD) -> None:
    if _libc() is None:
        return
    while True:
        await asyncio.sleep(period)
        try:
            trim()
        except OSError as exc:  # never let memory housekeeping take the agent down
            log.debug("malloc_trim: %s", exc)
