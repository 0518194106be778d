"""Helpers every layer may use (safe files, pinned downloads, progress); no torch, no napari."""
