"""Adopt a running nova deployment: import its databases into a store, keep it reconciled.

    novadb     the one door to nova's PostgreSQL and MySQL/MariaDB databases: URLs, snapshot
               transactions, server-side cursors sorted by instance uuid (mysqldb: PyMySQL)
    mapping    nova rows (and nova object primitives) -> canonical server records
    stream     one merge-join pass over every cell and the API database, bounded memory
    swap       build beside the live store, carry late feed writes over, swap atomically
    run        ``fastnova import-nova``: the import with progress lines
    reconcile  ``fastnova reconcile``: repair drift between the store and the cell databases

docs/import.md is the prose twin of this package.
"""
