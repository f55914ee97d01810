"""The outbound layer: every HTTP request osmos makes to a customer destination.

- `urlguard`: which URLs and addresses osmos may send to (checked at save and at connect);
- `headers`: which destination headers are valid (the one rule for save and send);
- `client`: `OutboundSession.send`, the only code that opens connections to destinations.

This package imports nothing from the apps (connectors, ingest, pipelines): they import it.
"""
