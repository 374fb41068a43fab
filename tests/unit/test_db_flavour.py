"""import-nova records the source database's flavour in the store; serve defaults to it."""
from __future__ import annotations

import pytest

from fastnova.importer.run import source_flavour
from fastnova.serve import stored_flavour
from fastnova.store import layout as L
from fastnova.store.writer import StoreWriter


@pytest.mark.parametrize("url, flavour", [
    ("postgresql://nova@db/nova_api", "postgresql"),
    ("postgresql+psycopg2://nova@db/nova_api", "postgresql"),
    ("postgres://nova@db/nova_api", "postgresql"),
    ("mysql+pymysql://nova:secret@db/nova_api", "mysql"),
    ("mysql://nova@db/nova_api", "mysql"),
    ("mariadb+pymysql://nova@db/nova_api", "mysql"),
])
def test_source_flavour(url, flavour):
    assert source_flavour(url) == flavour


def test_serve_defaults_to_the_recorded_flavour(tmp_path):
    assert stored_flavour(str(tmp_path)) == "mysql"            # no store yet
    writer = StoreWriter.open(str(tmp_path), sync=False)
    writer.close()
    assert stored_flavour(str(tmp_path)) == "mysql"            # a store no import wrote
    writer = StoreWriter.open(str(tmp_path), sync=False)
    with writer.batch() as b:
        b.set_meta(L.META_DB_FLAVOUR, b"postgresql")
    writer.close()                  # serve reads it before any process of its own opens it
    assert stored_flavour(str(tmp_path)) == "postgresql"
