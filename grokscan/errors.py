"""The one error type for mistakes a user can fix (distinct from bugs, which keep their tracebacks)."""

from __future__ import annotations


class UserError(ValueError):
    """Bad input a user can correct: a search-space file, a flag, a config value, a results store, a Ray
    address. The message is one line naming the file, key or value and what is allowed; the CLI prints it
    and exits with code 2."""
