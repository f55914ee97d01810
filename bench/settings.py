"""The product's settings with one change: the URL map adds the benchmark's baseline view.

``bench-ingest-small`` compares the ingest endpoint with a database-free Django JSON view
served by the same gunicorn, the same middleware and the same settings; only the URL map
differs (``bench/urls.py`` = the product's URLs + ``/bench/echo/``).
"""

from __future__ import annotations

from osmos.settings import *  # noqa: F403 (the whole point: the product's settings as they are)

ROOT_URLCONF = "bench.urls"
