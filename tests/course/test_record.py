import pytest

from recbook import __version__
from recbook_course import record as course


def test_record_prints_and_appends(tmp_path, monkeypatch, capsys):
    path = tmp_path / "results.jsonl"
    monkeypatch.setenv("RECBOOK_RESULTS", str(path))
    assert course.record("auc", 0.81234, "") is None
    course.record("time", 12, "s")
    out = capsys.readouterr().out
    assert "[recorded] auc = 0.8123" in out and "time = 12 s" in out
    assert course.read_records(path) == [{"name": "auc", "value": 0.81234, "unit": ""}, {"name": "time", "value": 12, "unit": "s"}]


def test_record_without_file_and_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("RECBOOK_RESULTS", raising=False)
    course.record("x", 1)
    assert course.read_records(tmp_path / "none.jsonl") == []
    with pytest.raises(ValueError, match="finite"):
        course.record("x", float("nan"))
    with pytest.raises(ValueError, match="name"):
        course.record("", 1)


def test_version():
    assert __version__.count(".") == 2


def test_figure_path(tmp_path, monkeypatch):
    monkeypatch.setenv("RECBOOK_FIGURES", str(tmp_path / "figs"))
    assert course.figure_path("a.png") == tmp_path / "figs" / "a.png" and (tmp_path / "figs").is_dir()
    monkeypatch.delenv("RECBOOK_FIGURES")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert course.figure_path("b.png") == tmp_path / "figures" / "b.png"
    with pytest.raises(ValueError, match="plain file name"):
        course.figure_path("../x.png")
