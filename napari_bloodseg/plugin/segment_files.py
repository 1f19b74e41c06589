"""Temporary label files for lazy images: a streamed result is a memory-mapped TIFF in a folder of its own
(``napari-bloodseg-*`` under the platform's temp dir), made on first use; the folder goes with its last file."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path


class LabelFiles:
    """The label files one Segment widget made; it deletes those and nothing else."""

    def __init__(self) -> None:
        #: the temporary folder (None until the first file)
        self.folder: Path | None = None

    def new(self, image_name: str) -> Path:
        """A new, uniquely named file in the temporary folder, named after the image."""
        if self.folder is None or not self.folder.is_dir():
            self.folder = Path(tempfile.mkdtemp(prefix="napari-bloodseg-"))
        stem = re.sub(r"[^\w.-]+", "_", image_name).strip("._") or "image"
        fd, name = tempfile.mkstemp(prefix=f"{stem}-", suffix=".labels.tif", dir=self.folder)
        os.close(fd)
        return Path(name)

    def remove(self, path: str | None) -> None:
        """Delete a label file made here (never anything else); an open memory map keeps its pages."""
        if not path or self.folder is None or Path(path).parent != self.folder:
            return
        try:
            Path(path).unlink(missing_ok=True)
            self.folder.rmdir()  # only when it is empty: the last streamed result is gone
        except OSError:  # not empty, or still mapped on Windows: the temp dir is the OS's to clean
            pass
