"""The shared test toolkit (STYLE.md, "One test toolkit"); tests import helpers from here,
fixtures come from the conftests.

- ``factories``: people, organizations, tokens, connectors, pipelines, ``build_world``;
- ``delivery``: the pipeline suites' world (orders to a CRM) and ``wait_for_run``;
- ``schemas``, ``bodies``, ``connectors``, ``pages``: schemas with their records, ingest
  bodies, destination settings, the page tests' connectors;
- ``sink``: the one loopback sink (fail ids, flap, drip, drop, refuse, per-record answers,
  rate-limit answers; every request kept with its headers and body);
- ``actors``, ``waiting``: running actors with ``join(fail_fast=True)``, deadline-bound waits;
- ``problems``: the RFC 9457 problem documents the API answers.
"""
