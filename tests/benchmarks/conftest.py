import pytest

from tests.conftest import SHARED, missing


@pytest.fixture
def smoke_face_sources(tmp_path, monkeypatch):
    """The domain benchmark's face sources, 12 faces each, cached in a temporary folder."""
    if not (SHARED / "datasets" / "wild" / "labels.csv").is_file():
        missing("shared", "../shared/datasets is absent: face-source benchmark skipped")
    from benchmarks import domain_benchmark

    monkeypatch.setattr(domain_benchmark, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(domain_benchmark, "SMOKE_FACES", 12)
    return domain_benchmark
