"""nova's table layout in MySQL/MariaDB, generated from tests/nova_schema.sql (one source).

The PostgreSQL DDL is rewritten with the types nova's models give on MySQL: DateTime ->
DATETIME, Boolean -> TINYINT(1), IPAddress -> VARCHAR(39), Enum -> ENUM, the big JSON columns
MediumText, tables InnoDB in utf8 (nova's ``mysql_charset``), and the reserved words ``key`` and
``binary`` quoted.  Each test gets databases of its own on $FASTNOVA_MYSQL_URL (default the local
MariaDB, root without a password).
"""
from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

import pytest

MYSQL_URL = os.environ.get("FASTNOVA_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/")
# nova's MediumText columns among those the tests create (nova/db/*/models.py).
MEDIUMTEXT = {("build_requests", "instance"), ("request_specs", "spec"),
              ("instance_info_caches", "network_info"), ("instances", "user_data")}
ENUMS = {"keypair_types": "ENUM('ssh', 'x509')", "instances0locked_by": "ENUM('owner', 'admin')"}


def admin_connection(database: str | None = None):
    import pymysql
    parts = urlsplit(MYSQL_URL)
    return pymysql.connect(host=parts.hostname or "127.0.0.1", port=parts.port or 3306,
                           user=parts.username or "root", password=parts.password or "",
                           database=database, autocommit=True, charset="utf8mb4")


def mysql_available() -> bool:
    try:
        import pymysql
        admin_connection().close()
        return True
    except (ImportError, pymysql.Error):
        return False


needs_mysql = pytest.mark.skipif(not mysql_available(), reason="no MySQL/MariaDB at " + MYSQL_URL)


def url(database: str) -> str:
    return MYSQL_URL.rstrip("/") + "/" + database + "?charset=utf8"


def mysql_ddl(pg_sql: str) -> list[str]:
    """The statements of one schema section, for MySQL."""
    out = []
    for stmt in (s.strip() for s in pg_sql.split(";")):
        lines = [ln for ln in stmt.splitlines() if not ln.lstrip().startswith("--")]
        stmt = "\n".join(lines).strip()
        if not stmt or stmt.startswith("CREATE TYPE"):
            continue
        table = re.match(r"CREATE TABLE (\w+)", stmt)
        if table:
            stmt = _table(table.group(1), stmt) + " ENGINE=InnoDB DEFAULT CHARSET=utf8"
        out.append(stmt)
    return out


def _table(name: str, stmt: str) -> str:
    for enum, spelled in ENUMS.items():
        stmt = stmt.replace(" " + enum, " " + spelled)
    for table, column in MEDIUMTEXT:
        if table == name:
            stmt = re.sub(r"\b%s text\b" % column, "%s MEDIUMTEXT" % column, stmt)
    stmt = re.sub(r"\bserial PRIMARY KEY\b", "INTEGER NOT NULL AUTO_INCREMENT PRIMARY KEY", stmt)
    stmt = re.sub(r"\btimestamp\b", "DATETIME", stmt)
    stmt = re.sub(r"\bboolean DEFAULT false\b", "TINYINT(1) DEFAULT 0", stmt)
    stmt = re.sub(r"\bboolean DEFAULT true\b", "TINYINT(1) DEFAULT 1", stmt)
    stmt = re.sub(r"\bboolean\b", "TINYINT(1)", stmt)
    stmt = re.sub(r"\binet\b", "VARCHAR(39)", stmt)
    stmt = re.sub(r"\bdouble precision\b", "DOUBLE", stmt)
    stmt = stmt.replace('"binary"', "`binary`")
    stmt = re.sub(r"(?<![\w`])key(?=\s+varchar|\s*[,)])", "`key`", stmt)
    return stmt
