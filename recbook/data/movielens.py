"""MovieLens-100k: download (checksummed, atomic) or read from a local folder.

Taught in notebook ``02_data``.

The GroupLens licence forbids redistributing MovieLens, so recbook never ships it:
it is read from a folder you name, from ``$RECBOOK_MOVIELENS_DIR``, from recbook's
cache, or downloaded from GroupLens (md5-checked) into that cache.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pandas as pd

from recbook.data.schema import ChecksumError, DataError, DataFileNotFoundError, DownloadError, RecDataset, build_item_text

ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
ML100K_MD5 = "0e33842e24a9c977be4e0107933c0723"
MOVIELENS_ENV = "RECBOOK_MOVIELENS_DIR"
CACHE_ENV = "RECBOOK_CACHE"
OFFLINE_ENV = "RECBOOK_OFFLINE"  # "1" turns every download off (offline CI, air-gapped machines)

ML100K_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip
_EXPECTED = {"ratings": 100_000, "users": 943, "items": 1682}
_REQUIRED_FILES = ("u.data", "u.item", "u.user")


def default_cache_dir() -> Path:
    """``$RECBOOK_CACHE`` if set, else the platform's user cache folder (``~/.cache/recbook`` on Linux)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("recbook"))


def downloads_allowed() -> bool:
    """False when ``$RECBOOK_OFFLINE`` is set to 1/true/yes/on: then nothing is downloaded."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("1", "true", "yes", "on")


def obtain_movielens_100k(path: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
                          url: str = ML100K_URL) -> Path | None:
    """The MovieLens-100k folder for a notebook: a local copy if there is one, else the checksummed download.

    Looks where :func:`find_movielens_100k` looks; if nothing is there and downloads are allowed (they are unless
    ``$RECBOOK_OFFLINE=1``), downloads the GroupLens zip into the cache (md5-checked, atomic). Returns ``None``
    — after printing one line that says why and how to get the data — only when there is no copy and the
    download is off or fails (no network). A ``path`` that holds no MovieLens files is a mistake, not a reason to
    download: it raises :class:`DataFileNotFoundError`.
    """
    if path is not None and _folder_in(Path(path)) is None:
        raise DataFileNotFoundError(
            f"{path}: no MovieLens-100k files here (need {', '.join(_REQUIRED_FILES)}); point it at the unzipped "
            f"ml-100k folder, or pass None to use ${MOVIELENS_ENV}, the cache or the download."
        )
    folder = find_movielens_100k(path, cache_dir)
    if folder is not None:
        return folder
    if not downloads_allowed():
        print(f"MovieLens-100k: no local copy and downloads are off (${OFFLINE_ENV}=1); skipping it. Unset "
              f"{OFFLINE_ENV}, or set ${MOVIELENS_ENV} to an unzipped ml-100k folder.")
        return None
    print(f"MovieLens-100k: no local copy; downloading {url} (5 MB, md5-checked) into the cache ...", flush=True)
    try:
        folder = fetch_zip(url, ML100K_MD5, cache_dir or default_cache_dir(), "ml-100k")
    except (DownloadError, ChecksumError) as exc:
        print(f"MovieLens-100k: skipping it — {exc}")
        return None
    print("MovieLens-100k: downloaded and verified.")
    return folder


def find_movielens_100k(path: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None) -> Path | None:
    """The folder holding ``u.data``/``u.item``/``u.user`` without downloading, or ``None``.

    Looks at ``path``, then ``$RECBOOK_MOVIELENS_DIR``, then the cache. A folder that
    contains an ``ml-100k`` sub-folder is accepted too.
    """
    candidates = []
    if path is not None:
        candidates.append(Path(path))
    if os.environ.get(MOVIELENS_ENV):
        candidates.append(Path(os.environ[MOVIELENS_ENV]))
    candidates.append(Path(cache_dir) if cache_dir is not None else default_cache_dir())
    for base in candidates:
        folder = _folder_in(base)
        if folder is not None:
            return folder
    return None


def _folder_in(base: Path) -> Path | None:
    for folder in (base, base / "ml-100k"):
        if all((folder / f).is_file() for f in _REQUIRED_FILES):
            return folder
    return None


def md5_of(path: str | os.PathLike) -> str:
    """Hex md5 of a file, read in chunks (``hashlib.file_digest``)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "md5").hexdigest()


def fetch_zip(url: str, md5: str, cache_dir: str | os.PathLike, folder_name: str, timeout: float = 60.0) -> Path:
    """Download a zip, check its md5, and extract it into ``cache_dir/folder_name`` atomically.

    The zip is streamed into a temporary file in ``cache_dir``; only when its md5
    matches is it extracted into a temporary folder, which is then renamed into
    place. A failed download, a checksum mismatch or a bad zip leaves nothing behind
    (no partial zip, no half-extracted folder). Returns the extracted folder.
    """
    cache_dir = Path(cache_dir)
    target = cache_dir / folder_name
    if target.is_dir():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp_zip = None
    tmp_dir = None
    try:
        with tempfile.NamedTemporaryFile(dir=cache_dir, prefix=".download-", suffix=".zip", delete=False) as fh:
            tmp_zip = Path(fh.name)
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    shutil.copyfileobj(response, fh)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                raise DownloadError(
                    f"could not download {url} ({exc}). No cached copy exists in {cache_dir}. Either connect to the "
                    f"network, or download the file yourself and pass its folder (path=... or ${MOVIELENS_ENV})."
                ) from None
        got = md5_of(tmp_zip)
        if got != md5:
            raise ChecksumError(
                f"{url}: md5 {got} does not match the published {md5}; the download is corrupt or the file changed. "
                "Nothing was cached; try again, or pass a verified local copy."
            )
        tmp_dir = Path(tempfile.mkdtemp(dir=cache_dir, prefix=".extract-"))
        try:
            with zipfile.ZipFile(tmp_zip) as zf:
                zf.extractall(tmp_dir)
        except zipfile.BadZipFile as exc:
            raise DataError(f"{url}: not a valid zip file ({exc}); nothing was cached") from None
        inner = tmp_dir / folder_name
        source = inner if inner.is_dir() else tmp_dir
        os.replace(source, target)
        return target
    finally:
        if tmp_zip is not None and tmp_zip.exists():
            tmp_zip.unlink()
        if tmp_dir is not None and tmp_dir.exists():
            shutil.rmtree(tmp_dir, ignore_errors=True)


def load_movielens_100k(
    path: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    download: bool | None = None,
    url: str = ML100K_URL,
) -> RecDataset:
    """Load MovieLens-100k (943 users, 1682 movies, 100,000 ratings 1–5).

    Source, in order: ``path`` (a folder with ``u.data``, ``u.item``, ``u.user``, or its
    parent), ``$RECBOOK_MOVIELENS_DIR``, the cache (``cache_dir`` or
    :func:`default_cache_dir`), and finally — if ``download`` (``None``: unless ``$RECBOOK_OFFLINE=1``) — the
    official GroupLens zip, md5-checked and extracted atomically into the cache.

    Item text is ``"Title (year). Genres: A, B."``; ``users`` holds age, gender,
    occupation and zip code. The counts are checked, so a truncated copy is caught.
    """
    if path is not None:
        folder = _folder_in(Path(path))
        if folder is not None:
            return read_movielens_100k_folder(folder)
        raise DataFileNotFoundError(
            f"{path}: no MovieLens-100k files here (need {', '.join(_REQUIRED_FILES)}); point path= at the unzipped "
            "ml-100k folder, or leave path=None to use the cache or download it."
        )
    folder = find_movielens_100k(path, cache_dir)
    if folder is None:
        if download is None:
            download = downloads_allowed()
        if not download:
            raise DataFileNotFoundError(
                f"MovieLens-100k not found (looked at path=, ${MOVIELENS_ENV} and the cache {cache_dir or default_cache_dir()}); "
                f"pass download=True (and unset ${OFFLINE_ENV}) or a folder holding u.data, u.item and u.user."
            )
        folder = fetch_zip(url, ML100K_MD5, cache_dir or default_cache_dir(), "ml-100k")
    return read_movielens_100k_folder(folder)


def read_movielens_100k_folder(folder: str | os.PathLike) -> RecDataset:
    """Parse an unzipped ``ml-100k`` folder (``u.item`` is latin-1) and check its counts."""
    folder = Path(folder)
    for name in _REQUIRED_FILES:
        if not (folder / name).is_file():
            raise DataFileNotFoundError(f"{folder / name} is missing; the ml-100k folder must hold {', '.join(_REQUIRED_FILES)}")
    inter = _read_table(folder / "u.data", "\t", ["user_id", "item_id", "rating", "timestamp"], "utf-8",
                        numeric=("user_id", "item_id", "rating", "timestamp"))
    items_raw = _read_table(folder / "u.item", "|", ["item_id", "title", "release_date", "video_release_date", "imdb_url", *ML100K_GENRES],
                            "latin-1", numeric=("item_id", *ML100K_GENRES))
    users = _read_table(folder / "u.user", "|", ["user_id", "age", "gender", "occupation", "zip_code"], "utf-8",
                        numeric=("user_id", "age"))

    counts = {"ratings": len(inter), "users": inter["user_id"].nunique(), "items": len(items_raw)}
    if counts != _EXPECTED:
        raise DataError(
            f"{folder}: expected {_EXPECTED} but found {counts}; the copy is incomplete or not MovieLens-100k. "
            "Delete it and download again."
        )
    flags = items_raw[ML100K_GENRES].to_numpy().astype(bool)
    genres = ["|".join(g for g, f in zip(ML100K_GENRES, row) if f and g != "unknown") for row in flags]
    year = pd.to_datetime(items_raw["release_date"], format="%d-%b-%Y", errors="coerce").dt.year
    title = items_raw["title"].fillna("").str.replace(r"\s*\(\d{4}\)\s*$", "", regex=True).str.strip()
    items = pd.DataFrame(
        {
            "item_id": items_raw["item_id"].astype("int64"),
            "title": title,
            "genres": genres,
            "year": year.astype("Int64"),
        }
    )
    items["text"] = [build_item_text(t, None if pd.isna(y) else int(y), g) for t, y, g in zip(items["title"], items["year"], items["genres"])]
    inter = inter.astype({"user_id": "int64", "item_id": "int64", "rating": "float64", "timestamp": "int64"})
    return RecDataset("movielens-100k", inter, items, users, {"source": str(folder)})


def _read_table(path: Path, sep: str, names: list[str], encoding: str, numeric: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read one ml-100k file; a truncated line or a missing or non-numeric required field is reported by file and line.

    ``numeric`` columns must be present on every line and parse as numbers (they are converted in place)."""
    try:
        with open(path, encoding=encoding) as fh:
            fields = [line.count(sep) + 1 for line in fh.read().splitlines() if line.strip()]
        df = pd.read_csv(path, sep=sep, names=names, header=None, encoding=encoding, engine="c", dtype=str)
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: could not be parsed as {sep!r}-separated {encoding} text ({exc})") from None
    if not fields:
        raise DataError(f"{path}: the file is empty")
    short = [i for i, n in enumerate(fields) if n < len(names)]
    if len(short) == len(fields):
        raise DataError(f"{path}: expected {len(names)} {sep!r}-separated fields per line; the file has fewer")
    if short:
        line = short[0] + 1
        raise DataError(f"{path}, line {line}: {fields[short[0]]} of {len(names)} {sep!r}-separated fields; the line is truncated "
                        "or malformed — fix or delete the copy and download again")
    for column in numeric:
        values = pd.to_numeric(df[column], errors="coerce")
        bad = values.isna().to_numpy()
        if bad.any():
            line = int(bad.argmax()) + 1
            shown = df[column].iloc[line - 1]
            raise DataError(f"{path}, line {line}, column {column!r}: expected a number, found "
                            f"{'nothing' if pd.isna(shown) else repr(shown)}; fix or delete the copy and download again")
        df[column] = values
    return df
