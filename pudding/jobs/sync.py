"""The EC2 sync: a thread of the worker process that keeps the API's inventory fresh.

Every `mini_worker_interval` seconds (the first time at start) it caches the running
instances and the account's role-tagged images (spec section 5), and deletes the security
groups of pudding's builds that no instance uses any more. The three parts fail on their
own: an error is logged and the others, and the next round, go ahead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog

from pudding.aws.ec2 import tags_of
from pudding.jobs.services import Services
from pudding.store.builds import PENDING
from pudding.store.cache import Image, Instance

log = structlog.get_logger("pudding.jobs.sync")


def instance_from_aws(instance: Mapping[str, Any]) -> Instance:
    tags = tags_of(instance)
    launched = instance.get("LaunchTime")
    return Instance(
        id=instance["InstanceId"],
        name=tags.get("Name", ""),
        instance_type=instance.get("InstanceType", ""),
        image_id=instance.get("ImageId", ""),
        ip=instance.get("PublicIpAddress", ""),
        private_ip=instance.get("PrivateIpAddress", ""),
        launch_time=(
            launched.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            if isinstance(launched, datetime) else ""
        ),
        queue=tags.get("queue", ""),
        env=tags.get("env", ""),
        site=tags.get("site", ""),
        role=tags.get("role", ""),
    )


class EC2Sync:
    def __init__(self, services: Services) -> None:
        self.services = services
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ec2-sync", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def run_once(self) -> None:
        parts: tuple[tuple[str, Callable[[], None]], ...] = (
            ("instances", self.sync_instances),
            ("images", self.sync_images),
            ("security groups", self.delete_unused_security_groups),
        )
        for name, part in parts:
            try:
                part()
            except Exception as error:
                log.warning("ec2 sync failed", part=name, error=f"{type(error).__name__}: {error}")

    def sync_instances(self) -> None:
        instances = [instance_from_aws(i) for i in self.services.ec2.running_instances()]
        self.services.cache.store_instances(instances, self.services.settings.instance_expiry)

    def sync_images(self) -> None:
        images = [
            Image(image_id=i.id, role=i.role, active=i.active, name=i.name, state=i.state)
            for i in self.services.ec2.role_images()
        ]
        self.services.cache.store_images(images, self.services.settings.image_expiry)

    def delete_unused_security_groups(self) -> None:
        """A group is kept while an instance uses it or its build is still being built."""
        ec2, builds = self.services.ec2, self.services.builds
        # Builds first: a build that is past pending had launched its instance before we
        # looked, so the instance listing below sees it.
        candidates = []
        for group_id, build_id in ec2.build_security_groups():
            build = builds.get(build_id)
            if build is None or build.state != PENDING:
                candidates.append((group_id, build_id))
        in_use = ec2.groups_in_use()
        for group_id, build_id in candidates:
            if group_id not in in_use and ec2.delete_security_group(group_id):
                log.info("deleted an unused security group", group_id=group_id,
                         build_id=build_id)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self.services.settings.mini_worker_interval)
