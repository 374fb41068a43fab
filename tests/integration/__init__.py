"""With the real PostgreSQL, RabbitMQ (and nova's schemas, openstacksdk, novaclient): the feed,
the commands with their database, the importer, the whole path with the broker cell."""
