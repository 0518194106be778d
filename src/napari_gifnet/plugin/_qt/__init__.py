"""Qt parts of napari-gifnet: the dock widgets, thin forms over the console functions
that share one job runner (:mod:`._job`) and remember their options across launches
(:mod:`._settings`). Nothing here imports torch at import time.
"""
