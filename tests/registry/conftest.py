"""Each registry test starts from a freshly migrated database of its own (a template copy)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mes.services.postgres import PostgresServer
from tests.fixtures.database import TestDatabase, create_database, drop_database


@pytest.fixture
def db(postgres_server: PostgresServer, migrated_template: str) -> Iterator[TestDatabase]:
    database = create_database(postgres_server, migrated_template)
    yield database
    drop_database(database)
