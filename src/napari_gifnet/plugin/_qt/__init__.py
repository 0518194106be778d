"""Qt parts of napari-gifnet: the dock widgets (:mod:`.fusion_widget`,
:mod:`.metrics_widget`, :mod:`.stack_widget`, :mod:`.pansharpen_widget`,
:mod:`.enhance_widget`), thin forms over the console functions that share one
job runner (:mod:`._job`: worker thread, Cancel, progress, notifications)
and remember their options across launches (:mod:`._settings`, Qt's
``QSettings``; ``NAPARI_GIFNET_SETTINGS`` names an INI file instead).

Nothing here imports torch at import time; the fusion itself lives in the
Qt-free :mod:`napari_gifnet.plugin.layer_fusion` and :mod:`napari_gifnet.engine.fusion`.
"""
