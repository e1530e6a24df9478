"""The one atomic-write helper: files and folders appear complete or not at all."""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write a file or a folder at; on success move it to ``path``.

    The temporary path sits in a fresh hidden folder in ``path``'s folder (so
    the final rename is atomic) and ends in ``suffix`` (for writers that pick
    a format from it). A file is synced to disk before the rename; an existing
    folder at ``path`` is replaced only once the new one is complete. On an
    error nothing at ``path`` changes, the temporary data are removed and the
    error propagates unchanged.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "out.txt"
        >>> with atomic_path(target) as tmp:
        ...     _ = tmp.write_text("done")
        >>> target.read_text()
        'done'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        tmp = scratch / f"data{suffix}"
        yield tmp
        if tmp.is_file():
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        old = None
        if path.is_dir() and not path.is_symlink():
            old = scratch / "old"
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`); return the path.

    Example:
        >>> import tempfile
        >>> atomic_write_text(Path(tempfile.mkdtemp()) / "a" / "b.md", "# title").read_text()
        '# title'
    """
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (see :func:`atomic_path`); return the path.

    Example:
        >>> import tempfile, torch
        >>> path = atomic_torch_save({"x": torch.ones(2)}, Path(tempfile.mkdtemp()) / "x.pt")
        >>> torch.load(path)["x"].tolist()
        [1.0, 1.0]
    """
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def pyplot():
    """``matplotlib.pyplot`` on the headless Agg backend (figures are only ever saved to files).

    Example:
        >>> import tempfile
        >>> plt = pyplot()
        >>> plt.get_backend().lower()
        'agg'
        >>> fig, ax = plt.subplots()
        >>> _ = ax.plot([0, 1], [1, 0])
        >>> save_figure(fig, Path(tempfile.mkdtemp()) / "line.png").name
        'line.png'
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike, dpi: int = 120, metadata: dict[str, str] | None = None) -> Path:
    """Lay out ``fig``, save it atomically as ``path`` (the format from its suffix) and close it.

    ``metadata`` goes into the file as the backend writes it (for a PNG, text entries beside matplotlib's own).

    Example:
        >>> import tempfile
        >>> fig = pyplot().figure()
        >>> save_figure(fig, Path(tempfile.mkdtemp()) / "f.png").suffix
        '.png'
    """
    if not fig.get_layout_engine():
        fig.tight_layout()
    path = Path(path)
    try:
        with atomic_path(path, suffix=path.suffix) as tmp:
            fig.savefig(tmp, dpi=dpi, metadata=metadata)
    finally:
        pyplot().close(fig)
    return path
