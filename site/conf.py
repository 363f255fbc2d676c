"""Sphinx configuration of the course website (Jupyter Book 1's engine: Sphinx + MyST-NB + sphinx-book-theme).

Do not run sphinx-build on ``site/`` directly: ``python site/build.py`` (``make site``) first assembles the sources
(these files, the executed notebooks with a further-reading cell each, and the pages it generates from the
notebooks' metadata and the exercise registry) in ``build/site/src``, then builds them with this file.
"""

from __future__ import annotations

project = "recbook: BERT/LLM recommenders, made fast and cheap for production"
author = "the recbook course"
copyright = "the recbook course authors"
release = ""  # build.py passes the release tag (-D release=...)
language = "en"

extensions = ["myst_nb"]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_generated/**", "README.md", "**.ipynb_checkpoints", "build.py"]

# The site shows the outputs stored in the executed notebooks (written by `make course`); it never runs them.
nb_execution_mode = "off"
# Measured values and verdicts appear exactly as the notebooks recorded them (no curly quotes or dashes swapped in).
smartquotes = False
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist", "html_image", "substitution"]
myst_heading_anchors = 3
# The release, from recbook_course.release: build.py overrides these with -D myst_substitutions.<key>=<value>.
myst_substitutions = {"tag": "", "repo_link": "", "classroom_readme": "classroom/README.md"}

html_theme = "sphinx_book_theme"
html_title = "recbook course"
html_static_path: list[str] = []
html_last_updated_fmt = None
html_copy_source = False
html_show_sourcelink = False
# The light/dark mode a first visit starts in (the theme's switcher remembers a reader's choice). Without it the
# theme's script reads an empty mode on a reader's first page and logs a console error (found by make site-check).
html_context = {"default_mode": "auto"}
html_theme_options = {
    "show_toc_level": 2,
    "home_page_in_toc": True,
    "use_download_button": False,
    "use_fullscreen_button": False,
    "navigation_with_keys": False,
    # Colab buttons come from recbook_course.release and open the *student* versions (build.py puts them on each page);
    # the theme's own launch buttons would open the solution notebooks at the page's path, so they stay off.
    "launch_buttons": {},
}
