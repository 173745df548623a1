"""BLAS threading policy.

Multi-threaded BLAS (OpenBLAS) stalls badly whenever another process holds one of the cores
(a 1,682² inverse went from 0.12 s to 6.7 s on a busy 2-core machine), so numeric hot paths
run with a bounded number of BLAS threads, 1 by default.
"""

from __future__ import annotations

import functools


def limit_blas(threads: int = 1):
    """Decorator: run the function with at most `threads` BLAS/OpenMP threads."""

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            from threadpoolctl import threadpool_limits

            with threadpool_limits(threads):
                return fn(*args, **kwargs)

        return wrapper

    return deco
