"""A registered model version's files: where to read them, and one digest of them all.

The ethics board approves a version as it was trained. ``overblik review`` records the
digest of the version's files, and the gate compares it with the files there now: an
estimator replaced after the review (the files of a local artifact store are plain files)
is a model the board never saw.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from overblik.features._errors import InputError

__all__ = ["files_digest", "version_folder"]

# MLflow writes this into a version's folder when it loads it from a local store: not part
# of the model.
_NOT_THE_MODEL = frozenset({"registered_model_meta"})


def _local_folder(uri: str) -> Path | None:
    """The folder a ``file:`` URI or plain path names, None for any other store."""
    parts = urlsplit(uri)
    return Path(url2pathname(parts.path)) if parts.scheme in ("", "file") else None


@contextmanager
def version_folder(client: Any, name: str, version: str) -> Iterator[Path]:
    """The version's files, in place in a local artifact store, else downloaded for the read.

    A download goes into a temporary folder removed on exit: without ``dst_path`` MLflow
    would download into a ``mkdtemp()`` folder it never removes, a copy of the model at
    every read. A local store is read where it is (MLflow too returns its path without
    copying), so messages name the files there.

    Raises
    ------
    InputError
        The files cannot be read.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    def cannot_read(exc: Exception) -> InputError:
        return InputError(f"the model files cannot be read ({type(exc).__name__}: "
                          f"{str(exc)[:200]}); register the model again with `overblik train`")

    try:
        uri = str(client.get_model_version_download_uri(name, version))
    except MlflowException as exc:
        raise cannot_read(exc) from None
    local = _local_folder(uri)
    if local is not None:
        yield local
        return
    with tempfile.TemporaryDirectory() as tmp:
        try:
            root = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
        except (MlflowException, OSError) as exc:
            raise cannot_read(exc) from None
        yield root


def files_digest(root: Path) -> str:
    """SHA-256 over every file under ``root``: its path relative to ``root`` and the SHA-256
    of its bytes, in path order (a missing folder holds no files).

    Symbolic links are followed, as the loader follows them: a linked folder's files are
    the model's files too (``rglob`` would skip them, and a file swapped there would load
    under the old digest).
    """
    outer = hashlib.sha256()
    files = sorted(Path(folder) / name
                   for folder, _, names in os.walk(root, followlinks=True)
                   for name in names if name not in _NOT_THE_MODEL)
    for path in files:
        inner = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                inner.update(block)
        outer.update(path.relative_to(root).as_posix().encode() + b"\0")
        outer.update(inner.hexdigest().encode() + b"\n")
    return outer.hexdigest()
