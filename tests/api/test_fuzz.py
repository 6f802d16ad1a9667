"""Property-based fuzzing of the whole API against its own OpenAPI schema, as each role.

Schemathesis generates requests from the generated schema (valid ones, to reach the views) and checks
that no response is a server error and that every response matches the schema: documented status
code, content type and body. Bounded and derandomized so it is fast and repeatable. No AI model is
registered, so uploads queue no inference work.
"""

import json

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from rest_framework.utils.encoders import JSONEncoder
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.helpers import make_prediction
from tests.factories import StudyFactory
from tokens.services import api_token_create

MAX_EXAMPLES = 15
FUZZ_ROLES = ("staff", "radiologist", "admin")
# Requests sent per role; tests/api/conftest.py prints the totals at the end of the run.
CASES: dict[str, int] = {}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _plain(value):
    # The generator's output holds lazy strings and OrderedDicts; schemathesis wants plain JSON.
    return json.loads(json.dumps(value, cls=JSONEncoder))


# Built at collection time from the code, exactly as /api/v1/schema/ serves it.
schema = schemathesis.openapi.from_dict(_plain(SchemaGenerator().get_schema(request=None, public=True)))
schema.app = get_wsgi_application()
# Explicit examples and random fuzzing, bounded by MAX_EXAMPLES. The coverage phase (every boundary
# case of every parameter) is left out: it ignores max_examples and alone takes minutes.
schema.config.phases.update(phases=["examples", "fuzzing"])


@pytest.fixture
def seeded(db, settings):
    # Machine clients are throttled; the fuzz run is not what that limit is for.
    settings.MEDPORTAL_API_TOKEN_RATE = None
    # Some records, so that lists have rows to render.
    make_prediction()
    StudyFactory()
    # As Django's test client does: the WSGI handler must not close the test's database connection.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def role_headers(seeded, user_for_role):
    """An API token per role: the fuzz run also exercises token authentication."""
    headers = {}
    for role in FUZZ_ROLES:
        _, key = api_token_create(name=f"fuzz {role}", user=user_for_role(role))
        headers[role] = {"Authorization": f"Bearer {key}"}
    return headers


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_api_never_fails_and_always_matches_its_schema(case, role_headers):
    # Each generated request is sent once as each role: allowed and refused paths both get fuzzed.
    for role in FUZZ_ROLES:
        CASES[role] = CASES.get(role, 0) + 1
        case.call_and_validate(headers=role_headers[role], checks=CHECKS)
