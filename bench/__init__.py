"""Benchmarks of osmos against the physical limit of this machine (issue 7).

Run them with ``make bench`` (all) or ``make bench-<name>`` (one); the runner is ``bench/run.py``.
Each benchmark writes ``bench/results/<name>.json`` and the table in ``docs/benchmarks.md``.
Nothing here is imported by the product or by ``make test`` (except the smoke tests in
``tests/bench/``).
"""
