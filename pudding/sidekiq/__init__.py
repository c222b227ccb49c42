"""A Sidekiq-compatible job engine: Sidekiq's Redis layout, run by Python workers.

Ruby's Sidekiq::Web and Sidekiq API see and steer our queues, retries, dead jobs
and processes; Ruby clients can enqueue jobs that Python runs, and back.
"""

from pudding.sidekiq.client import Client
from pudding.sidekiq.job import Job, Registry

__all__ = ["Client", "Job", "Registry"]
