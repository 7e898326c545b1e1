"""Stage 3b: serve a GO run's checkpoint over HTTP."""
