"""Against a running ``fastnova serve`` (forked master and workers on loopback), embedded: no
PostgreSQL, no RabbitMQ."""
