"""Schema creation, migration bookkeeping and process definitions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from engine_bridge.errors import ConflictError, UnknownProcessError
from engine_bridge.facts import Endpoint
from engine_bridge.store import SCHEMA_VERSION, SchemaError, StepRecord, Store

StepFactory = Callable[..., StepRecord]
ADD = Endpoint.ADD_TRANSACTION


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


def test_a_step_stores_its_definition_in_its_own_transaction(
    store: Store, make_step: StepFactory
) -> None:
    """A first start carries its definition: stored with the instance, a no-op when that
    version is stored already, and a different text refuses the whole step."""
    store.commit_step(replace(make_step("i1"), definition="<one/>"))
    assert store.get_definition("leave_approval", "v1") == "<one/>"
    store.commit_step(replace(make_step("i2"), definition="<one/>"))
    assert {r.id for r in store.list_instances()} == {"i1", "i2"}
    with pytest.raises(ConflictError, match="new version") as caught:
        store.commit_step(replace(make_step("i3", calls=[(ADD, {"n": 1})]), definition="<two/>"))
    assert caught.value.retryable is False
    assert store.get_definition("leave_approval", "v1") == "<one/>"
    assert {r.id for r in store.list_instances()} == {"i1", "i2"}
    assert store.outbox() == []


def test_a_refused_step_leaves_its_definition_unstored(
    store: Store, make_step: StepFactory
) -> None:
    """The definition is written in the step's transaction, so a step refused after it
    (here: the instance id is taken) takes the definition back with it."""
    store.commit_step(make_step("i1"))
    with pytest.raises(ConflictError, match="already exists"):
        store.commit_step(replace(make_step("i1", process_id="other"), definition="<x/>"))
    with pytest.raises(UnknownProcessError):
        store.get_definition("other", "v1")


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
