"""The course website (`make site`, site/build.py): it builds offline with warnings as errors and no broken internal
links, and what it shows comes from the course — glossary pairs, a page and an instructor page per notebook, Colab
links to the student versions at the release tag, the results table of the notebooks' run metadata."""

import importlib.util
import re
import sys
from pathlib import Path

import nbformat
import pytest

from recbook_course.exercises import list_exercises

# Sphinx 9 deprecations inside myst-parser and sphinx-book-theme: not ours, and not Sphinx warnings (those fail the build).
pytestmark = pytest.mark.filterwarnings("ignore:.*is deprecated. Check CHANGES for Sphinx API modifications")

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "site"
SEED = ROOT.parent / "shared" / "seed"
NOTEBOOK_NAMES = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]*.ipynb"))

# The pairs issue 14 asks for (Chinese, English); the English may be one of several synonyms on the same entry.
REQUIRED_PAIRS = [
    ("剪枝", "pruning"), ("量化", "quantization"), ("定点化", "fixed-point"), ("知识蒸馏", "knowledge distillation"),
    ("模型并行", "model parallelism"), ("数据并行", "data parallelism"), ("混合精度", "mixed precision"),
    ("梯度累积", "gradient accumulation"), ("早停", "early stopping"), ("弹性伸缩", "elastic scaling"),
    ("监控告警", "monitoring and alerting"), ("访问鉴权", "access control"), ("数据脱敏", "data masking"),
    ("交叉熵", "cross-entropy"), ("微调", "fine-tuning"), ("参数高效微调", "parameter-efficient fine-tuning"),
    ("灾难性遗忘", "catastrophic forgetting"), ("推荐系统", "recommender system"), ("召回", "retrieval"),
    ("召回", "candidate generation"), ("排序", "ranking"),
]


def _load_build():
    """site/build.py as a module (``site`` is not a package, and its name is the standard library's)."""
    if "recbook_site_build" not in sys.modules:
        spec = importlib.util.spec_from_file_location("recbook_site_build", SITE / "build.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return sys.modules["recbook_site_build"]


build = _load_build()
glossary_terms, further_reading = build.glossary_terms, build.further_reading  # site/'s hand-written content


# ------------------------------------------------------------------------------ fast: the hand-written content
def test_every_exercise_has_a_common_mistake_and_checker_hints():
    registered = set(list_exercises())
    assert set(build.MISTAKES) == registered, "site/common_mistakes.py: add (or drop) the exercises listed"
    hints = build.checker_hints()
    assert set(hints) == registered
    assert all(hints[k] for k in registered), [k for k in registered if not hints[k]]


def test_every_notebook_has_further_reading_with_every_paper_it_cites():
    refs, reading = further_reading.REFERENCES, further_reading.CHAPTER_READING
    assert set(reading) == set(NOTEBOOK_NAMES), "site/further_reading.py: CHAPTER_READING needs one entry per notebook"
    assert all(k in refs for cited, background in reading.values() for k in (*cited, *background))
    assert all(k in refs for k in further_reading.ARTICLE_READING) and len(further_reading.ARTICLE_READING) == 6
    cite = re.compile(r"\b([A-Z][A-Za-z-]+)(?: et al\.|(?:, [A-Z][A-Za-z-]+)* & [A-Z][A-Za-z-]+)?, [^()\n]{0,120}?\b(19\d\d|20[0-2]\d)\b")
    missing = []
    for name in NOTEBOOK_NAMES:
        nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
        text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        listed = [refs[k] for k in sum(reading[name], ())]
        for surname, year in set(cite.findall(" ".join(text.split()))):
            if not any(r.year == int(year) and r.authors.split()[0].rstrip(",") == surname for r in listed):
                missing.append(f"{name}: {surname} {year}")
    assert not missing, f"cited in a notebook but not in its further reading (site/further_reading.py): {missing}"


def test_glossary_entries_are_well_formed_and_match_the_seed_article():
    names = set(NOTEBOOK_NAMES)
    terms = [t.lower() for entry in glossary_terms.GLOSSARY for t in (*entry.english, *entry.chinese)]
    assert len(terms) == len(set(terms)), "a glossary term appears on two entries"
    for entry in glossary_terms.GLOSSARY:
        assert set(entry.chapters) <= names, entry
        assert entry.definition.strip() and entry.english and entry.chinese
    article = "".join(p.read_text(encoding="utf-8") for p in sorted(SEED.glob("*.txt"))) if SEED.is_dir() else ""
    if not article:
        pytest.skip(f"the seed article is not at {SEED}")
    wrong = [e.article for e in glossary_terms.GLOSSARY if e.article and e.article not in article]
    assert not wrong, f"glossary entries quote phrases the seed article does not use: {wrong}"


def test_chapters_follow_the_course_map_and_cover_every_notebook():
    chapters = build.read_chapters()
    assert sorted(c.name for c in chapters) == NOTEBOOK_NAMES
    order, _ = build.readme_course_map()
    known = [c.name for c in chapters if c.name in order]
    assert known == [n for n in order if n in NOTEBOOK_NAMES]
    for c in chapters:
        assert c.objectives, f"{c.name}: no learning objectives found"
        assert c.exercises == list_exercises(c.name)
        assert set(c.builds_on) <= {x.name for x in chapters[: chapters.index(c)]}


def test_the_link_check_finds_missing_files_and_anchors(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "index.html").write_text(
        '<a href="sub/page.html#here">ok</a> <a href="sub/page.html#nowhere">bad id</a> <a href="gone.html">bad file</a>'
        '<a href="https://example.org/x.html">external</a> <a href="#top">top</a> <img src="img.png"> <p id="top"></p>')
    (tmp_path / "sub" / "page.html").write_text('<h1 id="here">x</h1><a href="../index.html">back</a>')
    problems = build.broken_links(tmp_path)
    assert len(problems) == 3
    assert any("nowhere" in p for p in problems) and any("gone.html" in p for p in problems)
    assert any("img.png" in p for p in problems)


def test_colab_urls_come_from_the_release():
    repo, tag = build.release()
    url = build.colab_url("01_cross_entropy")
    assert url == f"https://colab.research.google.com/github/{repo}/blob/{tag}/student/01_cross_entropy.ipynb"
    try:
        from recbook_course import release
    except ImportError:
        return
    assert (repo, tag) == (release.REPO, release.TAG)


# ------------------------------------------------------------------------------ slow: the built site
@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("myst_nb")
    pytest.importorskip("sphinx_book_theme")
    out = tmp_path_factory.mktemp("site")
    status = build.build(out)
    return status, out / "html"


def _soup(path: Path):
    bs4 = pytest.importorskip("bs4")
    return bs4.BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def _text(node) -> str:
    return " ".join(node.get_text(" ").split())


@pytest.mark.slow
def test_site_builds_with_warnings_as_errors_and_no_broken_links(site):
    status, html = site
    assert status == 0, "site/build.py failed: Sphinx warnings or broken internal links (printed above)"
    assert (html / "index.html").is_file()
    assert build.broken_links(html) == []


@pytest.mark.slow
def test_every_notebook_has_a_page_and_an_instructor_page(site):
    status, html = site
    assert status == 0
    for name in NOTEBOOK_NAMES:
        page, notes = html / "chapters" / f"{name}.html", html / "instructor" / f"{name}.html"
        assert page.is_file() and notes.is_file(), name
        text = _text(_soup(page))
        assert "Further reading" in text, name
        if nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4).metadata.get("recbook", {}).get("records"):
            assert "[recorded]" in text, f"{name}: the page does not show the notebook's stored outputs"
        notes_text = _text(_soup(notes))
        for section in ("Learning objectives", "Prerequisites", "Expected run time", "Graded exercises", "Common mistakes"):
            assert section in notes_text, (name, section)
        for key in list_exercises(name):
            assert key in notes_text, (name, key)
        assert "not yet timed" in notes_text or "measured on" in notes_text


@pytest.mark.slow
def test_glossary_pairs_the_required_terms(site):
    status, html = site
    assert status == 0
    entries, current = [], []
    for node in _soup(html / "glossary.html").select("dl.glossary > *"):
        if node.name == "dt":
            current.append(_text(node).rstrip("#").strip())
        elif node.name == "dd":
            entries.append(set(current))
            current = []
    assert len(entries) == len(glossary_terms.GLOSSARY)
    missing = [pair for pair in REQUIRED_PAIRS if not any(set(pair) <= entry for entry in entries)]
    assert not missing, f"glossary entries missing: {missing}"
    linked = _soup(html / "chapters" / "11_pruning.html").select('a[href*="glossary.html#term-"]')
    assert linked, "chapter pages link their glossary terms"


@pytest.mark.slow
def test_colab_links_open_the_student_versions_at_the_release_tag(site):
    status, html = site
    assert status == 0
    repo, tag = build.release()
    pattern = re.compile(rf"^https://colab\.research\.google\.com/github/{re.escape(repo)}/blob/{re.escape(tag)}/student/(\w+)\.ipynb$")
    seen = {}
    for page in html.rglob("*.html"):
        for a in _soup(page).find_all("a", href=re.compile(r"colab\.research\.google\.com/github/")):
            match = pattern.match(a["href"])
            assert match, f"{page.relative_to(html)}: {a['href']} does not open student/ at {tag}"
            seen.setdefault(page.relative_to(html).as_posix(), set()).add(match.group(1))
    for name in NOTEBOOK_NAMES:
        assert name in seen.get(f"chapters/{name}.html", set()), f"chapter page {name} has no Colab button"
        assert name in seen.get(f"instructor/{name}.html", set())
    assert seen["index.html"] == set(NOTEBOOK_NAMES)


@pytest.mark.slow
def test_index_results_table_matches_the_notebooks_metadata(site):
    status, html = site
    assert status == 0
    tables = [t for t in _soup(html / "index.html").find_all("table") if "what it recorded" in _text(t)]
    assert len(tables) == 1
    rows = {}
    for tr in tables[0].select("tbody tr"):
        cells = [_text(td) for td in tr.find_all("td")]
        rows[cells[0]] = cells
    assert set(rows) == set(NOTEBOOK_NAMES)
    for name in NOTEBOOK_NAMES:
        meta = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4).metadata.get("recbook") or {}
        run, cells = meta.get("run") or {}, rows[name]
        if not run:
            assert cells[1] == "—", name
            continue
        assert cells[1].startswith(f"{run['seconds']:.0f} s"), (name, cells[1])
        assert run["date"] in cells[2], name
        for record in meta.get("records", []):
            value = record["value"]
            shown = f"{value:.4g}" if isinstance(value, float) else str(value)
            assert " ".join(shown.replace("|", "/").split()) in cells[3], (name, record)
    course_map = [t for t in _soup(html / "index.html").find_all("table") if "what it teaches" in _text(t)]
    assert len(course_map) == 1 and len(course_map[0].select("tbody tr")) == len(NOTEBOOK_NAMES)


# --- make site-check: every page in a real browser (tools/site_check.py) ------------------------------------------


def _site_check():
    spec = importlib.util.spec_from_file_location("site_check", ROOT / "tools" / "site_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["site_check"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_site_check_judges_what_the_browser_saw():
    sc = _site_check()
    good = sc.judge(sc.PageReport("chapters/x.html", title="x", text_chars=500, images=1, colab_links=1), is_chapter=True)
    assert good.problems == []
    bad = sc.judge(sc.PageReport("chapters/y.html", title="", text_chars=10, broken_images=["../_images/a.png"],
                                 console_errors=["TypeError: x is undefined"]), is_chapter=True)
    text = " | ".join(bad.problems)
    for expected in ("no <title>", "only 10 characters", "image did not load: ../_images/a.png", "no Open-in-Colab link",
                     "console error: TypeError"):
        assert expected in text
    assert sc.judge(sc.PageReport("search.html", title="Search", text_chars=40), is_chapter=False).problems == []
    assert sc.judge(sc.PageReport("glossary.html", title="g", text_chars=900), is_chapter=False).problems == []  # no Colab needed


@pytest.mark.slow
def test_site_check_finds_a_broken_page_in_headless_chromium(tmp_path):
    """The checker in a real browser, on a tiny hand-made site: a good chapter passes; a missing image, a script error
    and a chapter without its Colab link each fail; an external request is blocked, not failed (offline)."""
    pytest.importorskip("playwright")
    sc = _site_check()
    chromium = sc.find_chromium()
    if chromium is None:
        pytest.skip("no Chromium on PATH (Debian: apt-get install chromium; make site-check installs it)")
    (tmp_path / "html" / "chapters").mkdir(parents=True)
    (tmp_path / "html" / "ok.png").write_bytes((ROOT / "figures" / "01_logreg_training.png").read_bytes())
    words = "A paragraph a learner reads. " * 20
    colab = '<a href="https://colab.research.google.com/github/x/y/blob/v1/student/a.ipynb"><img src="https://colab.research.google.com/assets/colab-badge.svg"></a>'
    pages = {"chapters/good.html": f"<title>good</title><main>{colab}<p>{words}</p><img src='../ok.png'></main>",
             "chapters/no_colab.html": f"<title>no colab</title><main><p>{words}</p></main>",
             "chapters/broken.html": f"<title>broken</title><main>{colab}<p>{words}</p><img src='../missing.png'>"
                                     "<script>undefinedFunction()</script></main>"}
    for name, body in pages.items():
        (tmp_path / "html" / name).write_text(f"<!doctype html><html><head>{body.split('</title>')[0]}</title></head>"
                                              f"<body>{body.split('</title>')[1]}</body></html>")
    reports = {r.page: r for r in sc.check_site(tmp_path / "html", tmp_path / "out", chromium, screenshots={"chapters/good.html": "good.png"})}
    assert reports["chapters/good.html"].problems == [] and reports["chapters/good.html"].images == 1
    assert reports["chapters/good.html"].blocked_external >= 1  # the Colab badge image: blocked, not a failure
    assert reports["chapters/no_colab.html"].problems == ["no Open-in-Colab link"]
    broken = " | ".join(reports["chapters/broken.html"].problems)
    assert "image did not load: ../missing.png" in broken and "undefinedFunction" in broken
    assert (tmp_path / "out" / "good.png").stat().st_size > 1000
