"""``python -m napari_gifnet``: the ``napari-gifnet`` command line."""

from .cli.main import main

raise SystemExit(main())
