"""Operations: request ids, structured logs and Prometheus metrics.

- ``context``: the request id, organization and run of the work in progress (contextvars),
  read by the JSON log formatter; ``bind()`` sets them for a block.
- ``middleware``: ``X-Request-ID`` on every response, ingest request counts.
- ``logs``: ``LOG_FORMAT=json`` writes one JSON object per line.
- ``metrics``: the metric objects the apps increment, and ``GET /metrics``.
"""
