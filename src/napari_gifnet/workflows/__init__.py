"""Beyond one pair, numpy in / numpy out, built on the engine and the methods.

``focus_stack`` (:func:`fuse_stack`: all-in-focus image, depth and
confidence maps) with ``focus`` (per-pixel focus selection), ``alignment``
(translation and scale registration) and ``planes`` (reading planes one at
a time); ``pansharpening`` (:func:`pansharpen`) with ``pan_grid``;
``enhancement`` (:func:`enhance`).
"""
