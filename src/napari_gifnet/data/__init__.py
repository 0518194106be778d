"""Sample data; no torch.

``synthetic`` makes pairs and stacks from scikit-image's bundled images
(offline), ``published`` downloads the published example pairs (sha256
pinned), ``sample`` is the :class:`Sample` they return.
"""
