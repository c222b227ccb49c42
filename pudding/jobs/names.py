"""The job contract between the web process and the workers.

Jobs are plain Sidekiq jobs (pudding.sidekiq writes them; Ruby's Sidekiq can read them):

- Instance build: class `Pudding::InstanceBuildJob`, queue `instance-builds` (configurable),
  args `[<build id>]`. The build itself is a record in Redis (`pudding.store.builds`) that
  the worker reads and updates.
- Instance termination: class `Pudding::InstanceTerminationJob`, queue
  `instance-terminations` (configurable), args `[<instance id>, <slack channel>]`.
"""

from __future__ import annotations

INSTANCE_BUILD_JOB = "Pudding::InstanceBuildJob"
INSTANCE_TERMINATION_JOB = "Pudding::InstanceTerminationJob"

INSTANCE_BUILDS_QUEUE = "instance-builds"
INSTANCE_TERMINATIONS_QUEUE = "instance-terminations"
