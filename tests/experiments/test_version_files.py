"""The digest of a version's files: every file the loader can read, linked ones too."""

from __future__ import annotations

from pathlib import Path

from overblik.experiments._version_files import files_digest


def test_the_digest_covers_every_file_and_follows_links(tmp_path: Path) -> None:
    model = tmp_path / "model"
    (model / "artifacts").mkdir(parents=True)
    (model / "MLmodel").write_text("flavors: {}\n")
    (model / "artifacts" / "estimator.joblib").write_bytes(b"model one")
    first = files_digest(model)
    assert first == files_digest(model) and len(first) == 64
    (model / "artifacts" / "estimator.joblib").write_bytes(b"model two")
    assert files_digest(model) != first
    (model / "artifacts" / "estimator.joblib").write_bytes(b"model one")
    assert files_digest(model) == first
    # MLflow's own note on a local load is not the model.
    (model / "registered_model_meta").write_text("model_name: x\n")
    assert files_digest(model) == first
    # A linked folder: the loader reads through the link, so the digest does too (rglob
    # skipped it, and a file swapped there loaded under the old digest).
    real = tmp_path / "elsewhere"
    (model / "artifacts").rename(real)
    (model / "artifacts").symlink_to(real, target_is_directory=True)
    assert files_digest(model) == first
    (real / "estimator.joblib").write_bytes(b"model two")
    assert files_digest(model) != first
    # A renamed file is another model.
    (real / "estimator.joblib").write_bytes(b"model one")
    (real / "estimator.joblib").rename(real / "other.joblib")
    assert files_digest(model) != first
