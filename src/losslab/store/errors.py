"""The one error type of the store (its own module so the store's helpers can raise it too)."""


class StoreError(RuntimeError):
    """A problem with the store or one run in it (missing, read-only, locked, corrupt); the message says which."""
