"""The ``napari-gifnet`` command line: ``main`` and one module per command.

Nothing in the package imports it. Library code raises ``ValueError`` and
friends with clear messages; the command line turns them into one line and
an exit status.
"""
