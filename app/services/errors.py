"""What the pages catch and how they show it: the label store's errors (raised by the services they call) and the
one masking of secrets in a message (a database URL's password never reaches the screen)."""

from db.errors import ConcurrentEditError, LabelStoreError
from db.redact import mask_secrets

__all__ = ["ConcurrentEditError", "LabelStoreError", "mask_secrets"]
