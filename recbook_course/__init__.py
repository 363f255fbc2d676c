"""The course's own helpers, kept beside the library (as fastai and d2l keep theirs): the notebooks' self-checks
(``exercises``), what a notebook measured for the course summary (``record``) and the release that Colab badges and
install cells name (``release``). The library (:mod:`recbook`) never imports this package."""
