"""``pytest --update-golden`` rewrites the golden outputs under tests/golden/ from the current
rendering instead of comparing with them (then read the diff before committing it)."""

import pytest

import tests_helpers  # noqa: F401  (marks this run's processes from the start)


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite tests/golden/*.txt from the current rendering instead of comparing")


@pytest.fixture
def update_golden(request) -> bool:
    return request.config.getoption("--update-golden")
