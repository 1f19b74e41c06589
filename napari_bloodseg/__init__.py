"""napari-bloodseg: blood smear segmentation (U-Net, SegNet, DeconvNet) for napari, library and CLI."""

__version__ = "0.1.0"
