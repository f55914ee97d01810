"""One module per benchmark family; each exposes functions ``(ctx) -> Outcome``."""
