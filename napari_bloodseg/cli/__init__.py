"""The ``bloodseg`` command line: a thin layer over the library."""
