"""Fixtures shared by every test folder.

``pg_schema_url``: the URL of an empty PostgreSQL schema of the test's own (``eb_<random>``,
selected through the connection's ``search_path`` and dropped afterwards), on the real server
at 127.0.0.1:5432 (``ENGINE_BRIDGE_TEST_POSTGRES`` overrides the URL). An unreachable server
FAILS the test with a message saying so: PostgreSQL tests never skip.

Every task-tree walk the bridge's workflows make in any test is also made by SpiffWorkflow's
own iterator and the two compared (``engine_bridge.engine.tree_walk.compare_walks``): a
difference fails the test that walked. Likewise every countersign todo read from the open
signers kept on the live workflow is also gathered from its READY tasks and compared
(``engine_bridge.engine.todos.check_open_signers``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from engine_bridge.engine.todos import check_open_signers
from engine_bridge.engine.tree_walk import compare_walks

compare_walks.on = True
check_open_signers.on = True

POSTGRES_URL = os.environ.get(
    "ENGINE_BRIDGE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def with_search_path(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}')}"


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    schema = f"eb_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as exc:
        admin.dispose()
        pytest.fail(
            f"PostgreSQL at {POSTGRES_URL} is unreachable ({exc.orig}); these tests need it. "
            "Start the server or point ENGINE_BRIDGE_TEST_POSTGRES at one.",
            pytrace=False,
        )
    try:
        yield with_search_path(POSTGRES_URL, schema)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
