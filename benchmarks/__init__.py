"""The benchmark suite (``make bench``, ``python -m benchmarks``): see ``__main__.py``.

Importing the package pins BLAS to one thread (the serving path's setting on
a one-vCPU Lambda) before any module of it imports numpy, unless the
environment already chose a count.
"""

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
