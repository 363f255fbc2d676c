import pandas as pd
import pytest

from recbook.data import DataError, DataFileNotFoundError, load_dataset, load_folder, read_csv_checked

ITEMS = "item_id,title,genres,description,director\n1,Alpha,Action|Comedy,A fast film,Ann Lee\n2,Beta,,Slow drama,\n3,Gamma,Horror,,Bo Kim\n"
INTER = "user_id,item_id,timestamp,rating\n1,1,100,5\n1,2,200,3\n2,3,150,4\n2,1,160,2\n"


def write(folder, inter=INTER, items=ITEMS, users=None):
    folder.mkdir(parents=True, exist_ok=True)
    if inter is not None:
        (folder / "interactions.csv").write_text(inter)
    if items is not None:
        (folder / "items.csv").write_text(items)
    if users is not None:
        (folder / "users.csv").write_text(users)
    return folder


def test_loads_the_documented_schema(tmp_path):
    ds = load_folder(write(tmp_path / "shop", users="user_id,age\n1,30\n2,40\n"))
    assert ds.name == "shop" and ds.n_users == 2 and ds.n_items == 3
    assert ds.interactions.dtypes["timestamp"] == "int64" and ds.interactions["rating"].tolist() == [5, 3, 4, 2]
    text = ds.item_text()
    assert text[1] == "Alpha. Genres: Action, Comedy. A fast film. director: Ann Lee."
    assert text[2] == "Beta. Slow drama."
    assert text[3] == "Gamma. Genres: Horror. director: Bo Kim."
    assert ds.users["age"].tolist() == [30, 40]


def test_optional_rating_and_date_timestamps(tmp_path):
    inter = "user_id,item_id,timestamp\n1,1,2024-05-01 13:00\n1,2,2024-05-02\n"
    ds = load_folder(write(tmp_path, inter=inter, items="item_id,title\n1,A\n2,B\n"))
    assert ds.interactions["rating"].tolist() == [1.0, 1.0]
    assert ds.interactions["timestamp"].iloc[0] == 1714568400


@pytest.mark.parametrize(
    "inter, items, error, match",
    [
        (None, ITEMS, DataFileNotFoundError, "interactions.csv is missing"),
        (INTER, None, DataFileNotFoundError, "items.csv is missing"),
        ("user;item_id;timestamp\n1;1;100\n", ITEMS, DataError, "semicolons"),
        ("user_id\titem_id\ttimestamp\n1\t1\t100\n", ITEMS, DataError, "tabs"),
        ("userid,item_id,timestamp\n1,1,100\n", ITEMS, DataError, "rename 'userid' to 'user_id'"),
        ("user_id,item_id\n1,1\n", ITEMS, DataError, r"missing column\(s\) \['timestamp'\]"),
        ("user_id,item_id,timestamp\nbob,1,100\n", ITEMS, DataError, "row 2: column 'user_id' must hold integer ids, found 'bob'"),
        ("user_id,item_id,timestamp\n1,1.5,100\n", ITEMS, DataError, "column 'item_id' must hold integer"),
        ("user_id,item_id,timestamp,rating\n1,1,100,5\n1,2,200,\n", ITEMS, DataError, "row 3: column 'rating' is empty"),
        ("user_id,item_id,timestamp\n1,1,100\n1,9,200\n", ITEMS, DataError, "row 3: item_id 9 is not in items.csv"),
        ("user_id,item_id,timestamp\n1,1,yesterday\n", ITEMS, DataError, "neither Unix seconds nor a date"),
        ("user_id,item_id,timestamp\n", ITEMS, DataError, "no data rows"),
        ("", ITEMS, DataError, "is empty"),
        (INTER, "item_id,title\n1,A\n1,B\n", DataError, "appears more than once"),
        (INTER, "item_id,name\n1,A\n", DataError, "add the column"),
        (INTER, "item_id,title\n1,A\n2,\n3,C\n", DataError, "row 3: column 'title' is empty"),
    ],
)
def test_bad_input_names_file_column_and_row(tmp_path, inter, items, error, match):
    write(tmp_path, inter=inter, items=items)
    with pytest.raises(error, match=match):
        load_folder(tmp_path)


def test_errors_are_value_or_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_folder(tmp_path / "nope")
    write(tmp_path, inter="user_id,item_id,timestamp\nx,1,1\n")
    with pytest.raises(ValueError):
        load_folder(tmp_path)


def test_read_csv_checked_returns_frame(tmp_path):
    (tmp_path / "a.csv").write_text(" a , b \n1,2\n")
    df = read_csv_checked(tmp_path / "a.csv", ["a", "b"], [])
    assert list(df.columns) == ["a", "b"]


def test_load_dataset_dispatch(tmp_path):
    assert load_dataset("synthetic", n_users=20, n_items=30).n_users == 20
    assert load_dataset(str(write(tmp_path / "d"))).n_items == 3
    with pytest.raises(DataFileNotFoundError, match="unknown data source"):
        load_dataset("netflix")


def test_recdataset_validation_catches_bad_frames():
    from recbook.data import RecDataset

    items = pd.DataFrame({"item_id": [1], "title": ["A"], "genres": [""], "text": ["A."]})
    inter = pd.DataFrame({"user_id": [1], "item_id": [2], "rating": [1.0], "timestamp": [0]})
    with pytest.raises(DataError, match="missing from the items table"):
        RecDataset("x", inter, items)
    with pytest.raises(DataError, match="lacks column"):
        RecDataset("x", inter.drop(columns="rating"), items)
    with pytest.raises(DataError, match="must hold integers"):
        RecDataset("x", inter.assign(user_id=["a"], item_id=[1]), items)
    with pytest.raises(DataError, match="NaN"):
        RecDataset("x", inter.assign(item_id=[1], rating=[float("nan")]), items)
