"""Qt parts of napari-gifnet: the dock widget (:mod:`.fusion_widget`).

Nothing here imports torch at import time; the fusion itself lives in the
Qt-free :mod:`napari_gifnet.plugin.layer_fusion` and :mod:`napari_gifnet.engine.fusion`.
"""
