"""napari plugin layer (npe2): widgets, reader, writer and sample data over the Qt-free core.

Everything here is a thin shell: the numbers come from :mod:`napari_bloodseg.inference`,
:mod:`napari_bloodseg.metrics` and :mod:`napari_bloodseg.io`, so the plugin and the CLI always agree.
Submodules import napari/Qt lazily; importing this package costs nothing.
"""
