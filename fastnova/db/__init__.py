"""The PostgreSQL API database (optional, ``--database``): one denormalized row per server.

schema.py   the schema and its migrations (``fastnova db sync``)
aio.py      the workers' non-blocking client: psycopg2 in async mode on the uvloop loop
recover.py  completes commands whose store write was lost after their database commit
"""
