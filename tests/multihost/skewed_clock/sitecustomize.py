"""Loaded at the start of every Python process of a "skewed" test host (this folder is put
on its PYTHONPATH by tests/multihost/hosts.py): its wall clock runs OSMOS_TEST_CLOCK_SKEW
seconds off (``time.time()``, ``datetime.now()``, Django's ``timezone.now()``…, patched at
the C level by time-machine, ticking), while ``time.monotonic()`` stays true, as on a real
host whose clock is wrong. Forked worker processes inherit it.

(libfaketime was tried first: with Python 3.11 its ``clock_nanosleep`` answers EINVAL to
``time.sleep`` when the monotonic clock is left true, and ``threading.Event.wait`` hangs.)
"""

import os
import time

_skew = os.environ.get("OSMOS_TEST_CLOCK_SKEW")
if _skew:
    import time_machine

    time_machine.travel(time.time() + float(_skew), tick=True).start()
