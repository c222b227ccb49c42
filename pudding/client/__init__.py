"""The `pudding` command: a client of the HTTP API, and `pudding dev`."""
