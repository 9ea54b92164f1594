"""Schema creation, migration bookkeeping and process definitions."""

from __future__ import annotations

import pytest

from engine_bridge.errors import ConflictError, UnknownProcessError
from engine_bridge.store import SCHEMA_VERSION, SchemaError, Store


def test_open_creates_the_schema_and_upgrade_is_idempotent(db_url: str) -> None:
    """Opening an empty database creates the tables; upgrading again changes nothing."""
    with Store.open(db_url) as store:
        assert store.schema_version() == SCHEMA_VERSION
        store.put_definition("leave", "v1", "<bpmn/>")
        store.upgrade()
        store.upgrade()
        assert store.schema_version() == SCHEMA_VERSION
        assert store.get_definition("leave", "v1") == "<bpmn/>"


def test_open_without_create_refuses_an_unmigrated_database(db_url: str) -> None:
    """create=False on an empty database names the command that fixes it."""
    with pytest.raises(SchemaError, match="engine-bridge db upgrade"):
        Store.open(db_url, create=False)
    Store.open(db_url).close()
    with Store.open(db_url, create=False) as store:
        assert store.schema_version() == SCHEMA_VERSION


def test_a_definition_is_stored_once_per_version(store: Store) -> None:
    """The same text again is accepted; different text under the same version is refused."""
    store.put_definition("leave", "v1", "<one/>")
    store.put_definition("leave", "v1", "<one/>")
    store.put_definition("leave", "v2", "<two/>")
    with pytest.raises(ConflictError, match="new version") as caught:
        store.put_definition("leave", "v1", "<changed/>")
    assert caught.value.retryable is False
    assert store.get_definition("leave", "v1") == "<one/>"
    assert store.get_definition("leave", "v2") == "<two/>"


def test_an_unknown_definition_is_named_in_the_error(store: Store) -> None:
    """Asking for a definition that was never stored names process and version."""
    with pytest.raises(UnknownProcessError, match=r"'leave'.*'v9'"):
        store.get_definition("leave", "v9")


def test_an_unsupported_database_url_is_refused_clearly() -> None:
    """Only SQLite and PostgreSQL are supported; the error says what to use."""
    with pytest.raises(SchemaError, match="not supported"):
        Store.open("mysql://someone@db/x")
    with pytest.raises(SchemaError, match="cannot read database URL"):
        Store.open("not a url")


def test_the_password_never_appears_in_the_store_repr(tmp_path: object) -> None:
    """A database password is hidden in repr and errors."""
    from engine_bridge.store.database import Database

    db = Database("postgresql+psycopg://user:hunter2@127.0.0.1:1/none")
    assert "hunter2" not in db.url_for_display
    assert "***" in db.url_for_display
    db.dispose()
