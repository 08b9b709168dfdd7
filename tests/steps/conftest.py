from tests.e2e.conftest import local_stack, sandbox  # noqa: F401 (fixtures)
