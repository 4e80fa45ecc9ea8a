"""Property-based requests generated from the OpenAPI schema (schemathesis): no input gives a 5xx."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from servehelpers import (  # noqa: E402, F401  (fixtures)
    index_folder,
    papers_file,
    serve_model_folder,
    tiny_encoder,
)

EXAMPLES_PER_OPERATION = 30  # bounded: about 10 operations x 30 requests, well under a minute


@pytest.fixture(scope="module")
def api_schema(index_folder, tiny_encoder):
    from sciembed.serve import PaperIndex
    from sciembed.serve.app import ServeConfig, create_app

    app = create_app(PaperIndex.open(index_folder), tiny_encoder, ServeConfig())
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_no_request_from_the_schema_gets_a_server_error(api_schema):
    from hypothesis import given

    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 8
    statuses: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,  # the same requests on every run: a failure reproduces
            database=None,
        )
        def no_server_error(case):
            statuses.append(case.call_and_validate(checks=[not_a_server_error]).status_code)

        no_server_error()
    # the generated requests reached the handlers: both answers and refusals, and many of them
    assert len(statuses) >= 5 * len(operations) and 200 in statuses and 400 in statuses
