"""Open every page of the built course site in headless Chromium and fail on what a reader would see broken.

``make site-check`` (after ``make site``) runs it. For each HTML page of ``build/site/html`` it checks, in a real
browser (Debian's ``chromium`` driven by Playwright):

- the page **renders**: it loads, has a title, and its main content holds text (not an empty shell);
- every **local image** loaded (``complete`` with a non-zero natural width) — a figure missing from ``figures/`` or a
  notebook output that did not make it into the page;
- every **chapter** page has its **Open in Colab** button (a link to colab.research.google.com);
- no **console error** and no uncaught JavaScript exception.

The site is built offline, so requests leaving ``file://`` (MathJax's CDN, the Colab badge image) are blocked and
listed, not counted as failures: a reader online gets them, and the check must not depend on the network. It saves
full-page screenshots of the course map and of one chapter into ``--out`` (``build/site-check``) and a JSON report.

    python tools/site_check.py [--html build/site/html] [--out build/site-check] [--chromium PATH]

Exit status 0 when every page passes, 1 otherwise (each failure printed with its page), 2 when Chromium or Playwright
is missing (with how to get them).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
SCREENSHOTS = {"index.html": "course_map.png", "chapters/09_lm_recommender.html": "chapter_09.png"}
MIN_TEXT = 200  # characters of visible text a rendered page has at least (an empty theme shell has far fewer)
NO_TEXT_PAGES = {"search.html"}  # a search box and nothing else until the reader types a query

# what the page reports about itself, evaluated in the browser once it has loaded
PAGE_FACTS = """() => {
  const main = document.querySelector('main, article, [role=main]') || document.body;
  const local = [...document.images].filter(i => i.src.startsWith('file:'));
  return {
    title: document.title,
    text_chars: (main.innerText || '').trim().length,
    images: local.length,
    broken_images: local.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src')),
    colab_links: [...document.querySelectorAll('a[href*="colab.research.google.com"]')].length,
  };
}"""


@dataclass
class PageReport:
    page: str
    title: str = ""
    text_chars: int = 0
    images: int = 0
    broken_images: list = field(default_factory=list)
    colab_links: int = 0
    console_errors: list = field(default_factory=list)
    blocked_external: int = 0
    problems: list = field(default_factory=list)


def find_chromium(explicit: str | None = None) -> str | None:
    """The Chromium executable: ``explicit``, else the first of :data:`CHROMIUM_NAMES` on PATH."""
    if explicit:
        return explicit if Path(explicit).exists() else shutil.which(explicit)
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


def judge(report: PageReport, is_chapter: bool) -> PageReport:
    """Fill ``report.problems`` from what the browser saw (pure: unit-testable without a browser)."""
    if not report.title.strip():
        report.problems.append("no <title>: the page did not render")
    if report.text_chars < MIN_TEXT and report.page not in NO_TEXT_PAGES:
        report.problems.append(f"only {report.text_chars} characters of text in the main content (< {MIN_TEXT}): an empty page")
    report.problems += [f"image did not load: {src}" for src in report.broken_images]
    if is_chapter and report.colab_links == 0:
        report.problems.append("no Open-in-Colab link")
    report.problems += [f"console error: {msg}" for msg in report.console_errors]
    return report


def check_site(html: Path, out: Path, chromium: str, screenshots: dict[str, str] = SCREENSHOTS,
               pages: list[str] | None = None) -> list[PageReport]:
    """Open every page of ``html`` (or only ``pages``, relative paths) in headless Chromium; screenshots into ``out``."""
    from playwright.sync_api import sync_playwright

    html = html.resolve()
    names = pages or sorted(p.relative_to(html).as_posix() for p in html.rglob("*.html") if not p.relative_to(html).parts[0].startswith("_"))
    out.mkdir(parents=True, exist_ok=True)
    reports = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        blocked: list[str] = []

        def route(r):
            if r.request.url.startswith(("file:", "data:", "blob:")):
                return r.continue_()
            blocked.append(r.request.url)
            return r.abort("blockedbyclient")

        context.route("**/*", route)
        for name in names:
            page = context.new_page()
            errors: list[str] = []
            page.on("console", lambda m, errors=errors: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc, errors=errors: errors.append(f"uncaught exception: {exc}"))
            blocked.clear()
            try:
                page.goto((html / name).as_uri(), wait_until="load", timeout=60_000)
                page.wait_for_timeout(200)  # late console messages (scripts run on DOMContentLoaded/load)
                facts = page.evaluate(PAGE_FACTS)
            except Exception as exc:  # noqa: BLE001 — a page that does not load is a failed page, not a failed run
                reports.append(PageReport(name, problems=[f"did not load: {type(exc).__name__}: {str(exc).splitlines()[0]}"]))
                page.close()
                continue
            # a request we blocked shows up as a console error of its own: not the page's fault
            own = [e for e in errors if "ERR_BLOCKED_BY_CLIENT" not in e]
            report = PageReport(name, facts["title"], facts["text_chars"], facts["images"], facts["broken_images"],
                                facts["colab_links"], own, len(blocked))
            reports.append(judge(report, is_chapter=name.startswith("chapters/")))
            if name in screenshots:
                page.screenshot(path=str(out / screenshots[name]), full_page=True)
            page.close()
        browser.close()
    return reports


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--html", type=Path, default=ROOT / "build" / "site" / "html", help="the built site (make site)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "site-check", help="screenshots and report.json")
    parser.add_argument("--chromium", default=None, help="the Chromium executable (default: chromium on PATH)")
    args = parser.parse_args(argv)
    if not (args.html / "index.html").is_file():
        print(f"site_check: {args.html}/index.html not found: build the site first (make site)", file=sys.stderr)
        return 2
    chromium = find_chromium(args.chromium)
    if chromium is None:
        print("site_check: no Chromium found (Debian/Ubuntu: sudo apt-get install chromium; or pass --chromium PATH)", file=sys.stderr)
        return 2
    try:
        import playwright  # noqa: F401
    except ImportError:
        print("site_check: Playwright is not installed (pip install playwright; make site-check installs it)", file=sys.stderr)
        return 2
    reports = check_site(args.html, args.out, chromium)
    (args.out / "report.json").write_text(json.dumps([asdict(r) for r in reports], indent=1))
    failed = [r for r in reports if r.problems]
    for r in failed:
        for problem in r.problems:
            print(f"{r.page}: {problem}")
    images = sum(r.images for r in reports)
    external = sum(r.blocked_external for r in reports)
    print(f"site_check: {len(reports)} pages opened in {Path(chromium).name}, {images} local images, "
          f"{len(reports) - len(failed)} passed, {len(failed)} failed; {external} external requests blocked (offline); "
          f"screenshots and report.json in {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
