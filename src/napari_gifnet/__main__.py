"""``python -m napari_gifnet``: the ``napari-gifnet`` command line."""

from napari_gifnet.cli import main

raise SystemExit(main())
