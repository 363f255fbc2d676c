import hashlib
import io
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from ml100k_tiny import COUNTS, write_tiny_copy

from recbook.data import (
    ChecksumError,
    DataError,
    DataFileNotFoundError,
    DownloadError,
    fetch_zip,
    find_movielens_100k,
    load_movielens_100k,
    md5_of,
    movielens,
    read_movielens_100k_folder,
)
from recbook.data.splits import leave_last_out

# Invented data in the ml-100k layout, written to a temporary folder by the `tiny` fixture (no u.* files in the repo)
TINY_COUNTS = COUNTS  # the invented look-alike of tests/ml100k_tiny.py


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
    monkeypatch.delenv("RECBOOK_OFFLINE", raising=False)  # these test the download path itself (local URLs only)
    monkeypatch.delenv("RECBOOK_MOVIELENS_DIR", raising=False)
    url, _ = make_zip(tmp_path)  # its md5 is not the official one
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumError):
        load_movielens_100k(cache_dir=cache, url=url)
    assert list(cache.iterdir()) == []


def test_no_network_and_no_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("RECBOOK_OFFLINE", raising=False)  # these test the download path itself (local URLs only)
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


# ---------------------------------------------------------------- the tiny fixture (no real data needed)
@pytest.fixture
def tiny(tmp_path_factory):
    """The invented look-alike (tests/ml100k_tiny.py) written to a temporary folder: the repository holds no u.* files."""
    return write_tiny_copy(tmp_path_factory.mktemp("ml-100k-tiny"))


@pytest.fixture
def tiny_counts(monkeypatch):
    """Let read_movielens_100k_folder accept the fixture: it checks the real file's counts."""
    monkeypatch.setattr(movielens, "_EXPECTED", TINY_COUNTS)


def tiny_copy(tmp_path, name=None, line=None, text=None):
    """A copy of the fixture in tmp_path, with line ``line`` (1-based) of file ``name`` replaced by ``text`` (bytes)."""
    write_tiny_copy(tmp_path)
    if name is not None:
        lines = (tmp_path / name).read_bytes().split(b"\n")
        lines[line - 1] = text
        (tmp_path / name).write_bytes(b"\n".join(lines))
    return tmp_path


def test_tiny_fixture_is_rejected_by_the_count_check(tiny):
    expected = f"found {TINY_COUNTS}; the copy is incomplete or not MovieLens-100k"
    with pytest.raises(DataError, match=expected.replace("{", r"\{").replace("}", r"\}")) as info:
        read_movielens_100k_folder(tiny)
    assert str(tiny) in str(info.value) and "'ratings': 100000" in str(info.value)
    with pytest.raises(DataError, match="incomplete"):
        load_movielens_100k(tiny, download=False)


def test_tiny_fixture_counts_and_types(tiny_counts, tiny):
    ds = read_movielens_100k_folder(tiny)
    assert (len(ds.interactions), ds.n_users, ds.n_items, len(ds.users)) == (60, 12, 20, 12)
    assert ds.name == "movielens-100k" and ds.info == {"source": str(tiny)}
    assert ds.interactions.dtypes.astype(str).to_dict() == {"user_id": "int64", "item_id": "int64", "rating": "float64", "timestamp": "int64"}
    assert ds.interactions["rating"].sum() == 183 and ds.interactions["rating"].between(1, 5).all()
    assert (ds.interactions.groupby("user_id").size() == 5).all()
    assert not ds.interactions.duplicated(["user_id", "item_id"]).any()
    assert list(ds.users.columns) == ["user_id", "age", "gender", "occupation", "zip_code"]
    zips = ds.users.set_index("user_id")["zip_code"]
    assert zips[9] == "01002" and zips[12] == "V3N4P"  # zip codes stay text: leading zeros and letters survive


def test_tiny_fixture_keeps_file_order_and_exact_timestamps(tiny_counts, tiny):
    inter = read_movielens_100k_folder(tiny).interactions
    assert inter.iloc[0].tolist() == [8, 13, 1.0, 882982900]  # the first line of u.data
    assert inter.iloc[-1].tolist() == [4, 9, 3.0, 879442192]  # the last
    assert not inter["timestamp"].is_monotonic_increasing  # u.data is not in time order, like the real file
    last = leave_last_out(inter).test.set_index("user_id")  # so the split must sort by time itself
    assert last["item_id"].to_dict() == {1: 7, 2: 13, 3: 1, 4: 14, 5: 18, 6: 7, 7: 2, 8: 18, 9: 5, 10: 1, 11: 8, 12: 4}
    assert last.loc[1, "timestamp"] == 876542950


def test_tiny_fixture_titles_years_and_genres(tiny_counts, tiny):
    items = read_movielens_100k_folder(tiny).items.set_index("item_id")
    assert items.loc[1, "title"] == "Harbor Lights" and items.loc[1, "year"] == 1995  # the year leaves the title
    assert items.loc[1, "text"] == "Harbor Lights (1995). Genres: Drama, Romance."
    assert items.loc[4, "genres"] == "Animation|Children's|Sci-Fi"  # flags in ML100K_GENRES order
    assert items.loc[5, "genres"] == "Crime|Film-Noir|Mystery"
    assert items.loc[14, "genres"] == "Musical|Western"  # the last flag column is read
    assert items.loc[18, "year"] == 1998 and items.loc[18, "genres"] == "Drama|Mystery"
    # item 20: no year in the title, no release date, only the 'unknown' flag
    assert items.loc[20, "title"] == "The Lost Reel" and pd.isna(items.loc[20, "year"]) and items.loc[20, "genres"] == ""
    assert items.loc[20, "text"] == "The Lost Reel."
    assert items["year"].dtype == "Int64" and items["year"].isna().sum() == 1


def test_tiny_fixture_latin1_titles(tiny_counts, tiny):
    raw = (tiny / "u.item").read_bytes()
    assert b"P\xe2tissier" in raw and b"Se\xf1ora" in raw  # one latin-1 byte each ...
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # ... so the file is not UTF-8
    items = read_movielens_100k_folder(tiny).items.set_index("item_id")
    assert items.loc[3, "title"] == "Le P\u00e2tissier Fou" and items.loc[18, "title"] == "Se\u00f1ora Tempest"
    assert items.loc[3, "text"] == "Le P\u00e2tissier Fou (1996). Genres: Comedy."


@pytest.mark.parametrize("name, line, text, fields", [
    ("u.data", 7, b"1\t2\t3\t881250949\t9", "Expected 4 fields in line 7, saw 5"),
    ("u.item", 5, b"5|Broken|01-Jan-1995||x|0|1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0", "Expected 24 fields in line 5, saw 26"),
    ("u.user", 4, b"4|24|M|technician|43537|extra", "Expected 5 fields in line 4, saw 6"),
])
def test_a_line_with_too_many_fields_names_the_file_and_line(tmp_path, tiny_counts, name, line, text, fields):
    folder = tiny_copy(tmp_path, name, line, text)
    with pytest.raises(DataError, match="could not be parsed") as info:
        read_movielens_100k_folder(folder)
    assert str(folder / name) in str(info.value) and fields in str(info.value)


def test_u_data_that_is_not_utf8_names_the_file(tmp_path, tiny_counts):
    folder = tiny_copy(tmp_path, "u.data", 7, "1\t2\t3\t88125094\u00e9".encode("latin-1"))
    with pytest.raises(DataError, match="utf-8") as info:
        read_movielens_100k_folder(folder)
    assert str(folder / "u.data") in str(info.value)


@pytest.mark.parametrize("name", ["u.data", "u.item", "u.user"])
def test_each_missing_file_is_named(tmp_path, name):
    (tiny_copy(tmp_path) / name).unlink()
    with pytest.raises(DataFileNotFoundError, match=f"{name} is missing"):
        read_movielens_100k_folder(tmp_path)


# A line with a missing field or a value of the wrong type is named by file and line (it used to end in a bare
# ValueError from astype, or — missing genre flags read as NaN, and NaN counts as True — not be caught at all).
@pytest.mark.parametrize("name, line, text", [
    ("u.data", 7, b"1\t2\t3"),  # no timestamp
    ("u.data", 7, b"1\t2\tfive\t881250949"),  # rating is not a number
    ("u.item", 5, b"5|Broken|01-Jan-1995||x|0|1"),  # 7 of 24 fields
])
def test_a_malformed_value_names_the_file_and_line(tmp_path, tiny_counts, name, line, text):
    folder = tiny_copy(tmp_path, name, line, text)
    with pytest.raises(DataError) as info:
        read_movielens_100k_folder(folder)
    assert str(folder / name) in str(info.value) and f"line {line}" in str(info.value)
