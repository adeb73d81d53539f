"""The simple repository API (PEP 503, 691, 700, 592, 658/714, 792): page models, rendering
and upstream parsing, as pure functions of their inputs (no database, no HTTP framework)."""
