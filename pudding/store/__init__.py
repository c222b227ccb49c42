"""Pudding's records in Redis, shared by the web and the workers.

Every key starts with `pudding:`:

- `pudding:instance-build:<id>` (hash) and `pudding:instance-build:<id>:history` (list):
  one instance build and its state changes (`builds`); `pudding:instance-builds` (zset,
  score = creation time) lists them.
- `pudding:init-script:<id>` (base64 of gzip of the script) and `pudding:auth:<id>`
  (the one-time password), both with a TTL (`init_scripts`).
- `pudding:instances` + `pudding:instance:<iid>` and `pudding:images` +
  `pudding:image:<ami>`: the EC2 inventory the worker caches (`cache`).

Job queues are not here: they are Sidekiq's own keys, written by `pudding.sidekiq`.
"""
