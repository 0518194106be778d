"""Everything napari: the only code that imports napari (inside functions here;
its Qt widgets, in ``_qt/``, are the only code that imports qtpy or magicgui).

``layer_fusion`` (:func:`fuse_layers`: plan in the GUI thread, compute in a
worker, put the layers), ``fusion_plan``, ``resampling`` and
``layer_output``, ``layer_metrics``; the npe2 contributions ``sample_data``,
``writer`` (ImageJ-compatible TIFF with the provenance) and ``reader`` (which
reopens those files with their scale and metadata).
"""
