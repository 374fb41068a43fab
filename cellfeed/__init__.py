"""cellfeed: cell updates from RabbitMQ, journaled, acknowledged after fsync, applied in batches."""
