"""Helpers every layer may use; no torch, no napari.

``safe_files``: outputs never replace inputs, atomic writes; ``downloads``:
pinned downloads that keep foreign files; ``progress``: the progress
callback type and the cancellation exception.
"""
