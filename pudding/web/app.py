"""`create_app(config)`: the Falcon WSGI app with every route of the API."""

from __future__ import annotations

from collections.abc import Callable

import falcon
import redis

from pudding.config import WebConfig
from pudding.sidekiq.client import Client
from pudding.slack import BackgroundNotifier, SlackNotifier
from pudding.store.builds import BuildStore
from pudding.store.cache import Cache
from pudding.store.init_scripts import InitScripts
from pudding.web import builds, inventory, root
from pudding.web.errors import UnexpectedErrors, sentry_reporter
from pudding.web.fields import SingleParams
from pudding.web.middleware import AccessLog, Auth
from pudding.web.openapi import openapi_document


def create_app(
    config: WebConfig,
    *,
    redis_client: redis.Redis | None = None,
    shutdown: Callable[[], None] = lambda: None,
) -> falcon.App:
    """The API. `shutdown` is what `DELETE /` calls; the server passes its graceful stop."""
    client = redis_client if redis_client is not None else config.redis.client()
    build_store = BuildStore(client)
    scripts = InitScripts(client)
    cache = Cache(client)
    # Slack is told from a thread of its own: a slow Slack must not hold a request thread.
    slack = BackgroundNotifier(SlackNotifier(config.slack))

    app = falcon.App(middleware=[
        AccessLog(config.auth_token), Auth(config.auth_token, scripts), SingleParams(),
    ])
    secrets = (config.auth_token, config.slack.token, config.slack.webhook_url)
    UnexpectedErrors(sentry_reporter(config.sentry_dsn, secrets)).install(app)

    app.add_route("/", root.Root(shutdown))
    app.add_route("/kaboom", root.Kaboom())
    app.add_route("/debug/vars", root.DebugVars())
    app.add_route("/openapi.json", root.OpenAPIDocument(openapi_document(config)))
    app.add_route("/instances", inventory.Instances(cache))
    app.add_route("/instances/{instance_id}", inventory.Instance(config, cache, Client(client)))
    app.add_route("/images", inventory.Images(cache))
    app.add_route("/instance-builds", builds.InstanceBuilds(config, build_store))
    app.add_route(
        "/instance-builds/{build_id}",
        builds.InstanceBuild(config, build_store, scripts, slack),
    )
    app.add_route("/init-scripts/{build_id}", builds.InitScript(scripts))
    return app
