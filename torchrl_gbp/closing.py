"""Closing a resource without losing the error that ended its use."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol, TypeVar


class Closable(Protocol):
    """What :func:`closing` takes: anything with a ``close()`` method (an env, a collector, a file).

    Example:
        >>> import io
        >>> stream: Closable = io.StringIO()
        >>> with closing(stream):
        ...     _ = stream.write("data")
        >>> stream.closed
        True
    """

    def close(self) -> object: ...


C = TypeVar("C", bound=Closable)


@contextmanager
def closing(thing: C) -> Iterator[C]:
    """``contextlib.closing`` that never replaces the body's error: ``thing.close()`` runs on exit, and when the
    body raised and ``close()`` raises too (a ``ParallelEnv`` whose workers died: "trying to close a closed
    environment"), the body's error propagates with the close error as a note.

    Example:
        >>> class Broken:
        ...     def close(self):
        ...         raise RuntimeError("trying to close a closed environment")
        >>> try:
        ...     with closing(Broken()):
        ...         raise ValueError("a worker died")
        ... except ValueError as error:
        ...     print(error, error.__notes__)
        a worker died ["closing Broken raised too: RuntimeError('trying to close a closed environment')"]
    """
    try:
        yield thing
    except BaseException as error:
        try:
            thing.close()
        except Exception as close_error:
            error.add_note(f"closing {type(thing).__name__} raised too: {close_error!r}")
        raise
    thing.close()
