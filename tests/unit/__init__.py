"""In-process tests: one module or process at a time, real LMDB in temp dirs; no server, no
PostgreSQL, no RabbitMQ."""
