"""What leaves an API host toward the cells: a command's casts.

In reading order: ``outbox`` (casts made durable in the store with the command's write),
``forwarder`` (the supervised child that publishes them to RabbitMQ, or to fastnova's PostgreSQL
gate first), ``simcell_embedded`` (with no broker, the simulated cell the workers run in-process
instead; cellfeed's ``simcell_broker`` is the same cell behind RabbitMQ).
"""
