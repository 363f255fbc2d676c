"""obtain_movielens_100k: the local copy, else the checksummed download, else a one-line skip — and the offline switch."""

import hashlib
import io
import zipfile

import pytest

import recbook.data.movielens as ml
from recbook.data import (
    OFFLINE_ENV,
    DataFileNotFoundError,
    downloads_allowed,
    load_movielens_100k,
    movielens_or_synthetic,
    obtain_movielens_100k,
)


@pytest.fixture
def no_local_copy(monkeypatch, tmp_path):
    monkeypatch.delenv("RECBOOK_MOVIELENS_DIR", raising=False)
    monkeypatch.delenv(OFFLINE_ENV, raising=False)
    return tmp_path / "cache"


def served_zip(tmp_path, monkeypatch):
    """A zip with the three files obtain looks for, served from a file:// URL; its md5 becomes the 'published' one."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in ("u.data", "u.item", "u.user"):
            zf.writestr(f"ml-100k/{name}", "x\n")
    path = tmp_path / "served.zip"
    path.write_bytes(buf.getvalue())
    monkeypatch.setattr(ml, "ML100K_MD5", hashlib.md5(buf.getvalue()).hexdigest())
    return path.as_uri()


def test_local_copy_is_used_without_downloading(tmp_path, no_local_copy, monkeypatch):
    local = tmp_path / "mine" / "ml-100k"
    local.mkdir(parents=True)
    for name in ("u.data", "u.item", "u.user"):
        (local / name).write_text("x\n")
    monkeypatch.setattr(ml, "fetch_zip", lambda *a, **k: pytest.fail("downloaded although a local copy exists"))
    assert obtain_movielens_100k(local.parent, cache_dir=no_local_copy) == local
    monkeypatch.setenv("RECBOOK_MOVIELENS_DIR", str(local))
    assert obtain_movielens_100k(cache_dir=no_local_copy) == local


def test_downloads_when_there_is_no_copy(tmp_path, no_local_copy, monkeypatch, capsys):
    url = served_zip(tmp_path, monkeypatch)
    folder = obtain_movielens_100k(cache_dir=no_local_copy, url=url)
    assert folder == no_local_copy / "ml-100k" and (folder / "u.item").is_file()
    assert "downloaded and verified" in capsys.readouterr().out
    assert obtain_movielens_100k(cache_dir=no_local_copy, url="file:///gone.zip") == folder  # now cached


@pytest.mark.parametrize("value", ["1", "true", "YES", "on"])
def test_offline_switch_skips_with_a_message(tmp_path, no_local_copy, monkeypatch, capsys, value):
    url = served_zip(tmp_path, monkeypatch)
    monkeypatch.setenv(OFFLINE_ENV, value)
    assert not downloads_allowed()
    assert obtain_movielens_100k(cache_dir=no_local_copy, url=url) is None
    out = capsys.readouterr().out
    assert "downloads are off" in out and OFFLINE_ENV in out and out.count("\n") == 1
    assert not no_local_copy.exists()  # nothing fetched
    with pytest.raises(DataFileNotFoundError, match=OFFLINE_ENV):
        load_movielens_100k(cache_dir=no_local_copy, url=url)  # the library's default follows the switch too


def test_no_network_skips_and_caches_nothing(no_local_copy, capsys):
    assert downloads_allowed()
    assert obtain_movielens_100k(cache_dir=no_local_copy, url="http://127.0.0.1:9/ml-100k.zip") is None
    out = capsys.readouterr().out
    assert "skipping it" in out and "could not download" in out
    assert not any(no_local_copy.iterdir())  # no half-written download left


def test_a_wrong_path_is_an_error_not_a_download(tmp_path, no_local_copy, monkeypatch):
    monkeypatch.setattr(ml, "fetch_zip", lambda *a, **k: pytest.fail("downloaded for a mistyped path"))
    with pytest.raises(DataFileNotFoundError, match="no MovieLens-100k files here"):
        obtain_movielens_100k(tmp_path / "typo", cache_dir=no_local_copy)


def test_movielens_or_synthetic_falls_back_with_a_message(no_local_copy, monkeypatch, capsys):
    monkeypatch.setenv(OFFLINE_ENV, "1")
    monkeypatch.setenv("RECBOOK_CACHE", str(no_local_copy))
    ds = movielens_or_synthetic(seed=0, n_users=30, n_items=40)
    assert ds.interactions["user_id"].nunique() == 30
    assert "synthetic catalogue" in capsys.readouterr().out
