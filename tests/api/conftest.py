"""Fixtures for the API tests: users and signed-in clients per role."""

import sys

import pytest
from rest_framework.test import APIClient

from accounts.roles import Role
from tests.factories import UserFactory

ROLES = ("staff", "radiologist", "admin", "roleless")


@pytest.fixture
def user_for_role(db):
    made: dict[str, object] = {}

    def make(role: str):
        if role not in made:
            made[role] = UserFactory(
                username=f"api-{role}",
                role=None if role == "roleless" else Role(role),
                is_superuser=role == "admin",
            )
        return made[role]

    return make


@pytest.fixture
def client_for_role(user_for_role):
    """An API client signed in (session) as a user of ``role``; "anonymous" gives a client without one."""

    def make(role: str) -> APIClient:
        client = APIClient()
        if role != "anonymous":
            client.force_login(user_for_role(role))
        return client

    return make


def pytest_terminal_summary(terminalreporter):
    """Records how many requests the schemathesis fuzz run sent, per role."""
    fuzz = sys.modules.get("tests.api.test_fuzz")
    if fuzz is None or not fuzz.CASES:
        return
    counts = ", ".join(f"{role} {n}" for role, n in sorted(fuzz.CASES.items()))
    terminalreporter.write_line(
        f"schemathesis fuzz: {sum(fuzz.CASES.values())} requests ({counts}); "
        f"at most {fuzz.MAX_EXAMPLES} generated examples per operation"
    )
