"""Moves this process's wall clock when TEST_CLOCK_SHIFT_DAYS is set.

`pytest --clock-shift-days N` (tests/conftest.py) puts this folder on PYTHONPATH, so every Python
subprocess a test starts (the CLI, servers, function processes) runs N days away from today too.
libfaketime cannot do this job: under it, every `Condition.wait(timeout)` in the gateway's threads
blocks forever. time-machine moves `time.time()` and `datetime.now()` only; monotonic clocks,
which timeouts use, keep running as they are.
"""

import os

_shift = os.environ.get("TEST_CLOCK_SHIFT_DAYS")
if _shift:
    import datetime

    import time_machine

    _when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=float(_shift))
    time_machine.travel(_when, tick=True).start()
