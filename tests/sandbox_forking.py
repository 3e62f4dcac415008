"""Imported by a sandbox target: forks when imported, as code that trains at import may."""

import os
import time

CHILD = os.fork()
if CHILD == 0:
    time.sleep(100)
    os._exit(0)
