"""Exact tile-by-tile evaluation of the network.

``plan`` (storage and tile sizes from free memory), ``grid`` (tiles, halos,
reflected index maths), ``stages`` (the network's stages on one region),
``run`` (the passes over the tiles), ``stores`` (memory / disk scratch).
"""
