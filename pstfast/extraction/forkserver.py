"""Imported once by the extract's fork server, before it forks any worker.

Workers are forked from that server, so what it loads they start with: the worker code,
numpy, pyarrow and, when numba's on-disk cache holds them, the compiled kernels and PST
reader (each worker would otherwise load them itself, ~0.4 s, on its first batch), and
whatever pyarrow imports on its first conversion (pandas, when installed). A cold
cache is left alone: compiling takes 20-70 s, which only a large batch should pay, and
only once (``pstfast warm-up``).
"""

import pyarrow as pa

from ..pst import compiled
from . import kernels, worker  # noqa: F401 - imported for the forked workers
from .pool import die_with_parent

die_with_parent()

# pyarrow's first conversion of Python values imports pandas, when installed, to recognise
# its types: ~0.3-0.4 s that every worker paid on its first shard; once here instead
pa.array([], pa.string())

if kernels.cache_ready():
    kernels.warm_up()
if compiled.cache_ready():
    compiled.warm_up()
