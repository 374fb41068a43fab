"""fastnova: nova-api's compute API answered from a shared, memory-mapped LMDB store."""
__version__ = "0.1.0"
