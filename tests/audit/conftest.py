from tests.api.conftest import client_for_role, user_for_role  # noqa: F401  (the same signed-in clients)
