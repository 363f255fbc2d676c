"""Build the course website offline: ``make site`` (= ``python site/build.py``) writes ``build/site/html``.

    python site/build.py                  # sources in build/site/src, HTML in build/site/html
    python site/build.py --out DIR        # DIR/src and DIR/html instead (the tests build into a temporary folder)

Jupyter Book 1's engine — Sphinx with MyST-NB and sphinx-book-theme — and nothing that needs the network:

1. *Assemble* the Sphinx sources in ``OUT/src``: the hand-written pages of ``site/`` (index, glossary page text,
   instructor guide intro, conf.py), a copy of every executed notebook of ``notebooks/`` (stored outputs, never
   re-run) with its Colab button (the **student** version at the release tag, from ``recbook_course.release``), its
   glossary terms, its further reading and a link to its instructor notes; and the pages generated here from
   what the course itself says — the course map (order from README.md's course map, objectives and time from
   each notebook, measured run time from ``nb.metadata["recbook"]["run"]``), the results table (the same
   ``tools/results_table.py`` that writes README.md's), one instructor page per chapter (objectives, chapters it
   builds on, run time, the exercises ``recbook_course.exercises`` registers for it and the hints their checkers give)
   and the glossary and further-reading pages (from ``site/glossary_terms.py``, ``site/further_reading.py``).
2. *Build* with ``sphinx-build -W --keep-going -n`` (every warning is an error, every cross-reference must
   resolve) into ``OUT/html``.
3. *Check links*: every internal ``href``/``src`` in the HTML must name a file that exists, and every
   ``#fragment`` an id in that file.

Exit code 0 when all three pass; otherwise the warnings or broken links are printed and the code is 1.
"""

from __future__ import annotations

import argparse
import ast
import functools
import importlib.util
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat

SITE = Path(__file__).resolve().parent
ROOT = SITE.parent
NOTEBOOKS = ROOT / "notebooks"
README = ROOT / "README.md"
DEFAULT_OUT = ROOT / "build" / "site"
GENERATED = "_generated"  # fragments the hand-written pages include; not pages themselves (conf.py excludes them)
CHAPTERS = "chapters"  # the notebooks' pages
INSTRUCTOR = "instructor"  # the instructor guide
HAND_WRITTEN = ("conf.py", "index.md", "glossary.md", "further-reading.md", "instructor/index.md")

if importlib.util.find_spec("recbook") is None:  # recbook from this checkout when the package is not installed
    sys.path.append(str(ROOT))


def _site_module(name: str):
    """A hand-written content module next to this file, loaded by path (site/ stays off sys.path: its names are common)."""
    spec = importlib.util.spec_from_file_location(f"recbook_site_{name}", SITE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


common_mistakes, further_reading, glossary_terms = (_site_module(n) for n in ("common_mistakes", "further_reading", "glossary_terms"))
MISTAKES = common_mistakes.MISTAKES
ARTICLE_READING, CHAPTER_READING, REFERENCES = further_reading.ARTICLE_READING, further_reading.CHAPTER_READING, further_reading.REFERENCES
GLOSSARY = glossary_terms.GLOSSARY


# ------------------------------------------------------------------------------------------------ the release
def release() -> tuple[str, str]:
    """(GitHub owner/name, tag) of the course release: ``recbook_course.release`` is the one definition; the fallback only
    keeps the site buildable from a checkout that predates it."""
    try:
        from recbook_course import release as rel
    except ImportError:
        return "recbook/recbook", "v0.1.0"
    return rel.REPO, rel.TAG


def colab_url(name: str) -> str:
    """The Colab URL of the *student* version of notebook ``name`` at the release tag."""
    try:
        from recbook_course.release import colab_url as url
    except ImportError:
        repo, tag = release()
        return f"https://colab.research.google.com/github/{repo}/blob/{tag}/student/{name}.ipynb"
    return url(name)


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
COLAB_LINK = re.compile(r"https://colab\.research\.google\.com/github/[^)\s\"'<>]+?\.ipynb")


# ------------------------------------------------------------------------------------------------ the chapters
@dataclass
class Chapter:
    """What the site shows about one notebook, all read from the notebook (and README.md's course map)."""

    name: str  # "04_sequential"
    path: Path
    title: str  # "04 · Sequential recommenders: ..."
    promise: str  # the paragraph under the title
    time_note: str  # the notebook's own "**Time:** ..." sentence
    objectives: list[str]
    teaches: str  # README.md's "teaches" column, else the promise
    run: dict
    exercises: dict[str, str]
    uses_movielens: bool
    builds_on: list[str] = field(default_factory=list)

    @property
    def number(self) -> str:
        return self.name.split("_", 1)[0]

    @property
    def short_title(self) -> str:
        return re.sub(r"^\S+\s*·\s*", "", self.title)


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def _bullets(text: str) -> list[str]:
    items: list[str] = []
    for line in text.splitlines():
        if re.match(r"^\s*[-*] ", line):
            items.append(re.sub(r"^\s*[-*] ", "", line).strip())
        elif items and line.strip() and not line.lstrip().startswith("#"):
            items[-1] += " " + line.strip()
    return items


def readme_course_map(readme: Path = README) -> tuple[list[str], dict[str, str]]:
    """(notebook names in the order of README.md's course map, {name: its "teaches" cell}); empty when not found."""
    if not readme.is_file():
        return [], {}
    text = readme.read_text(encoding="utf-8")
    section = re.search(r"^## Course map\s*$(.*?)(?=^## )", text, re.S | re.M)
    order, teaches = [], {}
    for line in (section.group(1) if section else "").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        found = re.search(r"(\d\d[a-z]?_\w+)\.ipynb", cells[1]) if len(cells) >= 3 else None
        if found and found.group(1) not in teaches:
            order.append(found.group(1))
            teaches[found.group(1)] = cells[2]
    return order, teaches


def read_chapter(path: Path, teaches: dict[str, str]) -> Chapter:
    from recbook_course.exercises import list_exercises

    nb = nbformat.read(path, as_version=4)
    markdown = [c.source for c in nb.cells if c.cell_type == "markdown"]
    first = markdown[0] if markdown else ""
    title_line = next((line for line in first.splitlines() if line.startswith("# ")), f"# {path.stem}")
    paragraphs = _paragraphs(first.replace(title_line, "", 1))
    promise = next((p for p in paragraphs if "colab.research.google.com" not in p and not p.startswith("**Time")), "")
    time_note = next((p for p in paragraphs if p.startswith("**Time")), "")
    time_note = re.sub(r"^\*\*Time:?\*\*:?\s*", "", time_note).replace("\n", " ")
    objectives_cell = next((m for m in markdown if re.search(r"^#+\s*Learning objectives", m, re.M)), "")
    meta = nb.metadata.get("recbook") or {}
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    return Chapter(
        name=path.stem, path=path, title=title_line[2:].strip(), promise=" ".join(promise.split()),
        time_note=time_note, objectives=_bullets(objectives_cell.split("Learning objectives", 1)[-1]),
        teaches=teaches.get(path.stem) or " ".join(promise.split()),
        run=meta.get("run") or {}, exercises=list_exercises(path.stem),
        uses_movielens="movielens" in code.lower(),
    )


def _builds_on(chapter: Chapter, earlier: list[Chapter]) -> list[str]:
    """The earlier chapters the notebook's text refers to (`04`, `06_finetune_bert`, notebook 03, 11–14, ...)."""
    nb = nbformat.read(chapter.path, as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    found = []
    for other in earlier:
        n = re.escape(other.number)
        patterns = (rf"`{n}(?:_\w+)?`", rf"\bnotebooks? {n}\b", rf"\b{re.escape(other.name)}\b", rf"\bnotebooks? `{n}`")
        if any(re.search(p, text) for p in patterns):
            found.append(other.name)
    return found


def read_chapters(notebooks: Path = NOTEBOOKS, readme: Path = README) -> list[Chapter]:
    """Every numbered notebook, in the order of README.md's course map (notebooks it does not list go last)."""
    order, teaches = readme_course_map(readme)
    paths = {p.stem: p for p in sorted(notebooks.glob("[0-9][0-9]*.ipynb"))}
    names = [n for n in order if n in paths] + [n for n in paths if n not in order]
    chapters = [read_chapter(paths[n], teaches) for n in names]
    for i, chapter in enumerate(chapters):
        chapter.builds_on = _builds_on(chapter, chapters[:i])
    return chapters


# ------------------------------------------------------------------------------------------------ small helpers
def _seconds(run: dict) -> str:
    if not run or run.get("seconds") is None:
        return "not timed yet"
    s = float(run["seconds"])
    return f"{s:.0f} s" if s < 90 else f"{s:.0f} s (about {s / 60:.1f} min)"


def _busy(run: dict) -> bool:
    from_results = _results_table_module()
    other = run.get("other_cpu")
    return other is not None and other > from_results.BUSY


def _gpu_time(run: dict) -> str:
    env = run.get("environment") or {}
    if env.get("device") in ("cuda", "xla", "tpu") and run.get("seconds") is not None:
        return f"{float(run['seconds']):.0f} s measured on {env.get('gpu') or env.get('device')} (profile {env.get('profile', '?')})"
    return "not yet timed"


def _cpu_label(run: dict) -> str:
    count = str((run.get("environment") or {}).get("cpu_count", ""))
    if not count or count == "2":
        return "2-core laptop-class CPU"
    return f"CPU with {count} logical cores (the course's target is 2)"


def _machine(run: dict) -> str:
    env = run.get("environment") or {}
    if not env:
        return "machine not recorded"
    return (f"{env.get('cpu', '?')}, {env.get('cpu_count', '?')} logical CPUs ({env.get('cpu_features', 'features unknown')}), "
            f"device {env.get('device', '?')}, profile {env.get('profile', '?')}, {run.get('date', '?')}")


def _md_cell(text: str) -> str:
    """Plain text (a task, a checker's message) as literal Markdown on one line, safe in a table cell."""
    return re.sub(r"([\\`*_\[\]<>|$#])", r"\\\1", " ".join(text.split()))


@functools.cache
def _results_table_module():
    spec = importlib.util.spec_from_file_location("recbook_results_table", ROOT / "tools" / "results_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def colab_button(name: str) -> str:
    return f"[![Open In Colab]({COLAB_BADGE})]({colab_url(name)})"


def _doc(path: str, text: str) -> str:
    """A link to page ``path`` (from the source root, without suffix); the text may hold Markdown (a title's `code`)."""
    suffix = ".ipynb" if path.startswith(f"{CHAPTERS}/") else ".md"
    return f"[{text}](/{path}{suffix})"


def _terms_of(name: str) -> list:
    return [t for t in GLOSSARY if name in t.chapters]


def _reference_line(key: str) -> str:
    r = REFERENCES[key]
    mark = " — *on the seed article's reading list*" if key in ARTICLE_READING else ""
    note = f" — {r.note}" if r.note else ""
    return f"- {r.authors} ({r.year}). [{r.title}]({r.url}). {r.venue}{note}{mark}."


# ------------------------------------------------------------------------------------------------ generated pages
def course_map(chapters: list[Chapter]) -> str:
    repo, tag = release()
    lines = [
        f"Every chapter is a notebook stored with the outputs of its last run. **Open in Colab** opens its *student* version "
        f"(solutions removed, self-checks kept) from release `{tag}` of [{repo}](https://github.com/{repo}); the chapter page "
        "shows the executed solution. Run times were measured by `make course` in the `quick` profile "
        "(the machine is in the results table below).",
        "",
        "| # | chapter | what it teaches | run time (quick, measured) | exercises | Colab |",
        "|---|---|---|---:|---:|---|",
    ]
    for c in chapters:
        lines.append(f"| {c.number} | {_doc(f'{CHAPTERS}/{c.name}', c.short_title)} | {' '.join(c.teaches.split())} | {_seconds(c.run)} | "
                     f"{len(c.exercises)} | {colab_button(c.name)} |")
    lines += ["", "### Objectives, chapter by chapter", ""]
    for c in chapters:
        lines += [f"#### {c.title}", ""]
        lines += [f"{colab_button(c.name)} · {_doc(f'{CHAPTERS}/{c.name}', 'read the executed chapter')} · "
                  f"{_doc(f'{INSTRUCTOR}/{c.name}', 'instructor notes')}", ""]
        if c.time_note:
            lines += [f"**Time:** {c.time_note} Last measured run: {_seconds(c.run)}.", ""]
        lines += [f"- {o}" for o in c.objectives] or ["- (the notebook lists no learning objectives)"]
        lines.append("")
    return "\n".join(lines)


def chapters_toctree(chapters: list[Chapter]) -> str:
    entries = "\n".join(f"{CHAPTERS}/{c.name}" for c in chapters)
    return f"```{{toctree}}\n:caption: Chapters\n:hidden:\n\n{entries}\n```\n"


def results_table(notebooks: Path = NOTEBOOKS) -> str:
    """The results block of README.md, from the same function (so the two never disagree), without its markers."""
    module = _results_table_module()
    block = module.build_table(notebooks)
    return "\n".join(line for line in block.splitlines() if line not in (module.BEGIN, module.END)).strip() + "\n"


def glossary_page(chapters: list[Chapter]) -> str:
    titles = {c.name: f"{c.number} · {c.short_title}" for c in chapters}
    lines = [
        "The article this course grew from is written in Chinese; the course in English. Each entry pairs the two "
        "(several terms on one entry are synonyms), says how the article writes it when it uses it, and links the "
        "chapters that teach it. Chapters link back here: the terms at the end of each chapter page lead to this page.",
        "",
        "```{glossary}",
    ]
    for t in sorted(GLOSSARY, key=lambda t: t.english[0].lower()):
        lines += [*t.english, *t.chinese]
        body = t.definition
        if t.article:
            body += f" *In the seed article:* {t.article}."
        else:
            body += " *Not in the seed article;* the course's term."
        if t.chapters:
            body += " Taught in: " + ", ".join(_doc(f"{CHAPTERS}/{c}", titles.get(c, c)) for c in t.chapters) + "."
        lines += [f"  {body}", ""]
    lines.append("```")
    return "\n".join(lines) + "\n"


def further_reading_page(chapters: list[Chapter]) -> str:
    lines = ["## The seed article's reading list", "",
             "The six papers the article recommends (its §7.3), with the chapters that build on them:", ""]
    for key in ARTICLE_READING:
        users = [c for c in chapters if key in sum(CHAPTER_READING.get(c.name, ((), ())), ())]
        where = ", ".join(_doc(f"{CHAPTERS}/{c.name}", c.number) for c in users) or "—"
        lines.append(_reference_line(key) + f" Chapters: {where}.")
    lines += ["", "## By chapter", ""]
    for c in chapters:
        cited, background = CHAPTER_READING.get(c.name, ((), ()))
        lines += [f"### {_doc(f'{CHAPTERS}/{c.name}', c.title)}", ""]
        if cited:
            lines += ["Cited in the chapter:", "", *[_reference_line(k) for k in cited], ""]
        if background:
            lines += ["Background:", "", *[_reference_line(k) for k in background], ""]
        if not cited and not background:
            lines += ["(none listed)", ""]
    return "\n".join(lines)


def chapter_appendix(c: Chapter) -> str:
    """The Markdown cell appended to a chapter's page: further reading, glossary terms, instructor notes."""
    cited, background = CHAPTER_READING.get(c.name, ((), ()))
    lines = ["## Further reading", ""]
    if cited:
        lines += ["Cited in this chapter:", "", *[_reference_line(k) for k in cited], ""]
    if background:
        lines += ["Background:", "", *[_reference_line(k) for k in background], ""]
    lines += ["All papers, by chapter: {doc}`/further-reading`.", ""]
    terms = _terms_of(c.name)
    if terms:
        lines += ["**Terms** (the {doc}`glossary </glossary>` pairs them with the seed article's Chinese terms): "
                  + ", ".join(f"{{term}}`{t.english[0]}` ({t.chinese[0]})" for t in terms) + ".", ""]
    lines += [f"**Instructors:** {_doc(f'{INSTRUCTOR}/{c.name}', 'notes for this chapter')} (objectives, run time, graded "
              "exercises, common mistakes)."]
    return "\n".join(lines)


# ---- the checkers' hints, read from recbook_course/exercises/ (one module per chapter)
def _render_all(node: ast.AST, env: dict[str, list[str]]) -> list[str]:
    """The texts a message expression can produce: literal parts kept, other f-string fields shown as "…", a field
    naming a variable the checker sets to text (``hint = "..."``) expanded into each of those texts."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        texts = [""]
        for part in node.values:
            if isinstance(part, ast.Constant):
                options = [str(part.value)]
            elif isinstance(part, ast.FormattedValue) and isinstance(part.value, ast.Name) and part.value.id in env:
                options = env[part.value.id]
            else:
                options = ["…"]
            texts = [t + o for t in texts for o in options]
        return texts
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return [a + b for a in _render_all(node.left, env) for b in _render_all(node.right, env)]
    if isinstance(node, ast.IfExp):
        return _render_all(node.body, env) + _render_all(node.orelse, env)
    if isinstance(node, ast.Name) and node.id in env:
        return env[node.id]
    return []


def _text_variables(fn: ast.FunctionDef) -> dict[str, list[str]]:
    """{name: texts} for the variables a function assigns text to (``hint = "..."`` in any branch)."""
    env: dict[str, list[str]] = {}
    for node in ast.walk(fn):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            texts = _render_all(node.value, {})
            if texts:
                env.setdefault(node.targets[0].id, []).extend(texts)
    return env


def checker_hints(source: Path | None = None) -> dict[str, list[str]]:
    """{exercise id: the messages its checker returns with False}, f-string fields shown as "…".

    A checker that returns a message built by a helper (``return False, hint`` after ``hint = _lacks(...)``) gets the
    messages that helper (and the helpers it calls) can return."""
    if source is None:
        import recbook_course.exercises

        source = Path(recbook_course.exercises.__file__).parent  # the package: one module per chapter, shared helpers
    files = sorted(source.glob("*.py")) if source.is_dir() else [source]
    functions = {n.name: n for f in files for n in ast.parse(f.read_text(encoding="utf-8")).body if isinstance(n, ast.FunctionDef)}

    def helper_messages(name: str, seen: set[str]) -> list[str]:
        if name in seen or name not in functions:
            return []
        seen.add(name)
        found: list[str] = []
        for node in ast.walk(functions[name]):
            if isinstance(node, ast.Return) and node.value is not None:
                value = node.value.elts[0] if isinstance(node.value, ast.Tuple) and node.value.elts else node.value
                found += _render_all(value, _text_variables(functions[name]))
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                found += helper_messages(node.func.id, seen)
        return found

    hints: dict[str, list[str]] = {}
    for fn in functions.values():
        keys = [d.args[0].value for d in fn.decorator_list
                if isinstance(d, ast.Call) and getattr(d.func, "id", "") == "_exercise" and d.args and isinstance(d.args[0], ast.Constant)]
        if not keys:
            continue
        messages: list[str] = []
        env = _text_variables(fn)
        for node in ast.walk(fn):
            if (isinstance(node, ast.Return) and isinstance(node.value, ast.Tuple) and len(node.value.elts) == 2
                    and isinstance(node.value.elts[0], ast.Constant) and node.value.elts[0].value is False):
                message = node.value.elts[1]
                if isinstance(message, ast.Name) and message.id not in env:  # built by a helper called in this checker
                    calls = [n.func.id for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
                    texts = [t for call in calls for t in helper_messages(call, set())]
                else:
                    texts = _render_all(message, env)
                messages += [t for t in texts if t.strip("… .") and t not in messages]
        hints[keys[0]] = messages
    return hints


HIDDEN_TESTS = ROOT / "classroom" / "hidden_tests"
_POINTS = re.compile(r"^# %% (?P<id>\S+) \| (?P<points>\d+(?:\.\d+)?) points?\s*$", re.M)


def hidden_test_points(name: str, folder: Path = HIDDEN_TESTS) -> dict[str, str]:
    """{exercise id: points} from the grader's hidden tests of notebook ``name`` (``# %% ID | N points`` headers);
    empty when the notebook has none."""
    path = folder / f"{name}.py"
    if not path.is_file():
        return {}
    return {m["id"]: m["points"] for m in _POINTS.finditer(path.read_text(encoding="utf-8"))}


def instructor_page(c: Chapter, chapters: list[Chapter], hints: dict[str, list[str]]) -> str:
    by_name = {x.name: x for x in chapters}
    index = [x.name for x in chapters].index(c.name)
    lines = [f"# {c.number} · instructor notes: {c.short_title}", "",
             f"{_doc(f'{CHAPTERS}/{c.name}', 'The chapter')} · {colab_button(c.name)} (student version) · "
             f"{_doc(f'{INSTRUCTOR}/index', 'running the course for a class')}", "",
             "## Learning objectives", "", "From the notebook:", ""]
    lines += [f"- {o}" for o in c.objectives] or ["- (the notebook lists no learning objectives)"]
    lines += ["", "## Prerequisites", ""]
    if c.builds_on:
        lines.append("- Chapters it builds on (the notebook refers to them): "
                     + ", ".join(_doc(f"{CHAPTERS}/{n}", by_name[n].title) for n in c.builds_on) + ".")
    elif index > 0:
        prev = chapters[index - 1]
        lines.append(f"- The chapter before it in the course order: {_doc(f'{CHAPTERS}/{prev.name}', prev.title)}.")
    else:
        lines.append("- None: this is where the course starts.")
    lines.append("- Python and basic PyTorch (tensors, `nn.Module`, a training step), as for the whole course.")
    try:
        from recbook_course.release import extras_for

        lines.append(f"- On Colab the set-up cell installs `recbook[{','.join(extras_for(c.name))}]` at the release tag.")
    except ImportError:
        pass
    if c.uses_movielens:
        lines.append("- Uses MovieLens-100k when it is available (`RECBOOK_MOVIELENS_DIR`, the cache or a download); "
                     "offline it says what it skips.")
    lines += ["", "## Expected run time", "",
              "| where | profile | time |", "|---|---|---|",
              f"| {_cpu_label(c.run)} | quick | {_seconds(c.run)} measured by `make course`"
              + (" *(other processes shared the CPU: inflated)*" if _busy(c.run) else "") + " |",
              f"| Colab GPU | full | {_gpu_time(c.run)} |", "",
              f"Measured on: {_machine(c.run)}." + (f" The notebook's own estimate: {c.time_note}" if c.time_note else ""), "",
              f"## Graded exercises ({len(c.exercises)})", ""]
    points = hidden_test_points(c.name)
    if c.exercises:
        lines += ["Each is checked in the notebook by `recbook_course.exercises.check(id, answer)` (the notebook's entries in "
                  f"`recbook_course.exercises.list_exercises(\"{c.name}\")`); `make grade` runs that self-check and the exercise's "
                  "hidden tests" + (f" from `classroom/hidden_tests/{c.name}.py`." if points else "."), ""]
        if points:
            lines += ["| id | task | points |", "|---|---|---:|"]
            lines += [f"| `{k}` | {_md_cell(task)} | {points.get(k, '—')} |" for k, task in c.exercises.items()]
        else:
            lines += ["| id | task |", "|---|---|"]
            lines += [f"| `{k}` | {_md_cell(task)} |" for k, task in c.exercises.items()]
    else:
        lines.append("None: this chapter has no self-checked exercises.")
    lines += ["", "## Common mistakes", ""]
    if c.exercises:
        lines += ["A typical wrong answer per exercise, then what the self-check prints for wrong answers (read from its "
                  "checker in `recbook_course/exercises/`; “…” stands for values filled in at run time).", ""]
    for key in c.exercises:
        lines.append(f"- **`{key}`**: {MISTAKES.get(key, '(no common mistake recorded yet)')}")
        lines += [f"  - ❌ “{_md_cell(hint)}”" for hint in hints.get(key, [])]
    if not c.exercises:
        lines.append("None recorded (no exercises).")
    return "\n".join(lines) + "\n"


def instructor_overview(chapters: list[Chapter]) -> str:
    lines = ["| # | chapter | run time (quick, 2-core CPU) | Colab GPU | graded exercises |", "|---|---|---:|---|---:|"]
    for c in chapters:
        lines.append(f"| {c.number} | {_doc(f'{INSTRUCTOR}/{c.name}', c.short_title)} | {_seconds(c.run)} | {_gpu_time(c.run)} | "
                     f"{len(c.exercises)} |")
    total = sum(float(c.run.get("seconds") or 0) for c in chapters)
    lines += ["", f"Sum of the measured run times: {total / 60:.1f} minutes.", "",
              "```{toctree}", ":hidden:", "", *[c.name for c in chapters], "```"]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ assembling
def chapter_notebook(c: Chapter):
    """The notebook as the site shows it: stored outputs, Colab links to the student version, the appendix cell."""
    nb = nbformat.read(c.path, as_version=4)
    url = colab_url(c.name)
    has_button = False
    for cell in nb.cells:
        if cell.cell_type == "markdown" and "colab.research.google.com/github/" in cell.source:
            cell.source = COLAB_LINK.sub(url, cell.source)
            has_button = True
    if not has_button:
        nb.cells.insert(1 if nb.cells else 0, nbformat.v4.new_markdown_cell(colab_button(c.name)))
    nb.cells.append(nbformat.v4.new_markdown_cell(chapter_appendix(c)))
    nb.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
    # Progress bars are ipywidgets views that need JavaScript from a CDN; their text/plain fallback holds the final
    # bar (tools/run_course.py writes it), which reads the same offline.
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data and "text/plain" in data:
                del data[WIDGET_VIEW]
    return nb


def assemble(src: Path, chapters: list[Chapter]) -> None:
    """Write the Sphinx sources into ``src`` (emptied first)."""
    if src.exists():
        shutil.rmtree(src)
    (src / GENERATED).mkdir(parents=True)
    (src / CHAPTERS).mkdir()
    (src / INSTRUCTOR).mkdir()
    for rel in HAND_WRITTEN:
        shutil.copy2(SITE / rel, src / rel)
    for c in chapters:
        nbformat.write(chapter_notebook(c), src / CHAPTERS / f"{c.name}.ipynb")
    hints = checker_hints()
    for c in chapters:
        (src / INSTRUCTOR / f"{c.name}.md").write_text(instructor_page(c, chapters, hints), encoding="utf-8")
    generated = {
        "course_map.md": course_map(chapters),
        "chapters_toctree.md": chapters_toctree(chapters),
        "results.md": results_table(),
        "glossary.md": glossary_page(chapters),
        "further_reading.md": further_reading_page(chapters),
        "instructor_overview.md": instructor_overview(chapters),
    }
    for name, text in generated.items():
        (src / GENERATED / name).write_text(text, encoding="utf-8")


# ------------------------------------------------------------------------------------------------ link check
class _Links(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("id", "name") and value:
                self.ids.add(value)
            if value and ((key == "href" and tag in ("a", "link", "area")) or (key == "src" and tag in ("img", "script", "iframe", "source"))):
                self.links.append(value)


def _parse(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return parser


def broken_links(html: Path) -> list[str]:
    """Every internal link in the HTML under ``html`` that names a missing file or a missing ``#id``."""
    parsed: dict[Path, _Links] = {}
    problems = []
    for page in sorted(html.rglob("*.html")):
        if page.relative_to(html).parts[0] in ("_static", "_sources"):  # theme template fragments, not pages
            continue
        links = parsed.setdefault(page, _parse(page))
        for link in links.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link == "#":  # external (http, mailto, data, javascript) or a no-op
                continue
            target = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            where = f"{page.relative_to(html)}: {link}"
            if not target.is_file():
                problems.append(f"{where} -> missing file")
                continue
            if parts.fragment and target.suffix == ".html":
                ids = parsed.setdefault(target, _parse(target)).ids
                if unquote(parts.fragment) not in ids:
                    problems.append(f"{where} -> no id {parts.fragment!r} in {target.relative_to(html)}")
    return problems


# ------------------------------------------------------------------------------------------------ main
def build(out: Path = DEFAULT_OUT, quiet: bool = True) -> int:
    """Assemble, build with warnings as errors, check the links; 0 when all pass."""
    try:
        import myst_nb  # noqa: F401
        import sphinx_book_theme  # noqa: F401
        from sphinx.cmd.build import build_main
    except ImportError as exc:
        print(f"make site needs Sphinx, MyST-NB and sphinx-book-theme ({exc}); install them with "
              "`pip install --constraint constraints.txt -e '.[site]'`", file=sys.stderr)
        return 2
    started = time.perf_counter()
    src, html = out / "src", out / "html"
    chapters = read_chapters()
    if not chapters:
        print(f"no notebooks found in {NOTEBOOKS}", file=sys.stderr)
        return 1
    assemble(src, chapters)
    if html.exists():
        shutil.rmtree(html)
    repo, tag = release()
    substitutions = {"tag": tag, "repo_link": f"[{repo}](https://github.com/{repo})",
                     "classroom_readme": f"[classroom/README.md](https://github.com/{repo}/blob/{tag}/classroom/README.md)"}
    args = ["-b", "html", "-W", "--keep-going", "-n", "-E", "-D", f"release={tag}", "-d", str(out / "doctrees")]
    args += [a for key, value in substitutions.items() for a in ("-D", f"myst_substitutions.{key}={value}")]
    args += [str(src), str(html)]
    status = build_main(args + (["-q"] if quiet else []))
    if status != 0:
        print(f"sphinx-build failed (exit code {status}): the warnings above are errors", file=sys.stderr)
        return 1
    problems = broken_links(html)
    for problem in problems:
        print(f"broken internal link: {problem}", file=sys.stderr)
    if problems:
        return 1
    pages = len(list(html.rglob("*.html")))
    print(f"site built: {html} ({pages} pages, {len(chapters)} chapters, no warnings, no broken internal links) "
          f"in {time.perf_counter() - started:.0f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="build folder (default build/site): OUT/src, OUT/html")
    parser.add_argument("--verbose", action="store_true", help="Sphinx's progress output too")
    args = parser.parse_args(argv)
    return build(args.out.resolve(), quiet=not args.verbose)


if __name__ == "__main__":
    sys.exit(main())
