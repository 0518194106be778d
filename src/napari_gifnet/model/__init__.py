"""The network and its weights; imports torch and nothing of the package above it.

``network`` is :class:`GIFNet` (the published architecture, checkpoint keys
unchanged), ``_transformer`` its transformer blocks, ``windows`` the
window and reflection geometry the network reads its maps through (which
the tiled engine and training reuse), and ``weights`` finds, downloads,
checks and loads the checkpoint.
"""
