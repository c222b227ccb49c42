"""The OpenAPI document against the app: schemathesis, with and without the token.

Every operation is fuzzed with data that fits the document and data that does not;
schemathesis checks each response (status documented, content type, headers, body
schema, no 5xx, invalid data rejected, auth enforced, 405 for other methods).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import ignored_auth, negative_data_rejection

from pudding.store.cache import Cache, Image, Instance

from .conftest import AUTH

EXAMPLES = 25


@pytest.fixture
def operations(app, r):
    # Something to list and to find, so that the 200 shapes are exercised too.
    Cache(r).store_instances([Instance(id="i-0a", site="org", env="prod", role="worker")])
    Cache(r).store_images([Image("ami-00000001", role="worker", active=True)])
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


def fuzz(operation, mode: GenerationMode, **call) -> None:
    excluded = call.pop("excluded_checks", [])
    if mode is GenerationMode.NEGATIVE:
        # The API ignores unknown query parameters, as the Go original did; schemathesis
        # counts that as accepting invalid data. Validation itself has its own tests.
        excluded = [*excluded, negative_data_rejection]
    if operation.path == "/kaboom":
        excluded = [*excluded, schemathesis.checks.not_a_server_error]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case) -> None:
        case.call_and_validate(excluded_checks=excluded, **call)

    try:
        run()
    except Unsatisfiable:
        # Nothing to make invalid: the operation takes no parameters and no body.
        assert mode is GenerationMode.NEGATIVE


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_with_the_token(operations, mode):
    # Every route but the document itself, which schemathesis leaves out.
    assert len(operations) == 13
    for operation in operations:
        fuzz(operation, mode, headers=AUTH)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_without_credentials(operations, mode):
    for operation in operations:
        # ignored_auth sends a token-less request to see it refused; this whole test is that.
        fuzz(operation, mode, excluded_checks=[ignored_auth])
