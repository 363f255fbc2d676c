import hashlib
import io
import os
import zipfile
from pathlib import Path

import pytest

from recbook.data import (
    ChecksumError,
    DataError,
    DataFileNotFoundError,
    DownloadError,
    fetch_zip,
    find_movielens_100k,
    load_movielens_100k,
    md5_of,
    read_movielens_100k_folder,
)


def test_shared_copy_loads_and_is_checked(ml100k_dir):
    ds = load_movielens_100k(ml100k_dir)
    assert (len(ds.interactions), ds.n_users, ds.n_items) == (100_000, 943, 1682)
    assert ds.interactions["rating"].sum() == 352986
    first = ds.items.set_index("item_id").loc[1]
    assert first["title"] == "Toy Story" and first["year"] == 1995
    assert first["text"] == "Toy Story (1995). Genres: Animation, Children's, Comedy."
    assert len(ds.users) == 943 and {"age", "gender", "occupation"} <= set(ds.users.columns)
    # latin-1 titles decode to real characters
    assert ds.items["title"].str.contains("é").any()


def test_env_variable_and_parent_folder(ml100k_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("RECBOOK_MOVIELENS_DIR", str(ml100k_dir.parent))  # the parent holding ml-100k/
    assert find_movielens_100k(cache_dir=tmp_path) == ml100k_dir
    assert load_movielens_100k(cache_dir=tmp_path, download=False).n_users == 943


def test_truncated_copy_is_rejected(ml100k_dir, tmp_path):
    for name in ("u.item", "u.user"):
        (tmp_path / name).write_bytes((ml100k_dir / name).read_bytes())
    lines = (ml100k_dir / "u.data").read_text().splitlines()[:5000]
    (tmp_path / "u.data").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="incomplete"):
        read_movielens_100k_folder(tmp_path)


def test_missing_files_and_wrong_path(tmp_path, monkeypatch):
    monkeypatch.delenv("RECBOOK_MOVIELENS_DIR", raising=False)
    with pytest.raises(DataFileNotFoundError, match="u.data"):
        load_movielens_100k(tmp_path / "nowhere")
    with pytest.raises(DataFileNotFoundError, match="missing"):
        read_movielens_100k_folder(tmp_path)
    with pytest.raises(DataFileNotFoundError, match="download=True"):
        load_movielens_100k(cache_dir=tmp_path, download=False)


def test_wrong_delimiter_in_a_copy(ml100k_dir, tmp_path):
    for name in ("u.item", "u.user"):
        (tmp_path / name).write_bytes((ml100k_dir / name).read_bytes())
    (tmp_path / "u.data").write_text("1,2,3,881250949\n")
    with pytest.raises(DataError, match="fields per line"):
        read_movielens_100k_folder(tmp_path)


# ---------------------------------------------------------------- downloads
def make_zip(tmp_path: Path) -> tuple[str, str]:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ml-100k/u.data", "1\t1\t5\t881250949\n")
        zf.writestr("ml-100k/README", "tiny test archive\n")
    path = tmp_path / "served" / "ml-100k.zip"
    path.parent.mkdir()
    path.write_bytes(buf.getvalue())
    return path.as_uri(), hashlib.md5(buf.getvalue()).hexdigest()


def test_fetch_zip_good_checksum_extracts_atomically(tmp_path):
    url, md5 = make_zip(tmp_path)
    cache = tmp_path / "cache"
    folder = fetch_zip(url, md5, cache, "ml-100k")
    assert (folder / "u.data").read_text().startswith("1\t1\t5")
    assert sorted(p.name for p in cache.iterdir()) == ["ml-100k"]  # no temp files left
    assert fetch_zip("file:///does/not/matter", md5, cache, "ml-100k") == folder  # cached: no download


def test_fetch_zip_md5_mismatch_caches_nothing(tmp_path):
    url, _ = make_zip(tmp_path)
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumError, match="does not match"):
        fetch_zip(url, "0" * 32, cache, "ml-100k")
    assert list(cache.iterdir()) == []


def test_load_movielens_md5_mismatch_caches_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("RECBOOK_MOVIELENS_DIR", raising=False)
    url, _ = make_zip(tmp_path)  # its md5 is not the official one
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumError):
        load_movielens_100k(cache_dir=cache, url=url)
    assert list(cache.iterdir()) == []


def test_no_network_and_no_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("RECBOOK_MOVIELENS_DIR", raising=False)
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="No cached copy") as info:
        load_movielens_100k(cache_dir=cache, url="http://127.0.0.1:9/ml-100k.zip")
    assert isinstance(info.value, ConnectionError)
    assert list(cache.iterdir()) == []


def test_corrupt_zip_with_matching_md5_caches_nothing(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"this is not a zip")
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="not a valid zip"):
        fetch_zip(bad.as_uri(), md5_of(bad), cache, "ml-100k")
    assert list(cache.iterdir()) == []


def test_default_cache_dir_honours_env(monkeypatch, tmp_path):
    from recbook.data import default_cache_dir

    monkeypatch.setenv("RECBOOK_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("RECBOOK_CACHE")
    assert "recbook" in str(default_cache_dir())
