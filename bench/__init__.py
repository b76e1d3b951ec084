"""Benchmarks for wasmlattice: ``python -m bench [SECTION ...]`` (``make bench``).

Each section lives in ``bench.sections`` and returns tables; ``bench.table``
prints them. Servers and load generators run in their own processes, started
and stopped by the bench (``bench.procs``).
"""
