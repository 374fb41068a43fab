"""The LMDB store: layout (the contract), reader (the one door for reads), writer (for writes)."""
