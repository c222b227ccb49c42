"""pudding's own job handlers, loaded by bin/pudding-workers."""
