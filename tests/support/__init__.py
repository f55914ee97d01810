"""The shared test toolkit (STYLE.md): a loopback sink with every behaviour the suites need."""
