"""The query surface of GET /servers and /servers/detail, with nova 34's semantics.

params (request -> Spec, per microversion and role) -> plan (index choice and page walk over
fastnova.store.reader) with filters (predicates), sort (nova's effective order), regex (bounded
regular expressions, MySQL/PostgreSQL flavours) and row (the query row the writer stores).
"""
