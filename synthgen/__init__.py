"""synthgen: compose labelled synthetic SEM micrographs from real or procedural particle templates."""

import os as _os

# Set before anything imports albumentations or OpenCV: every `synthgen` and `detector` module (and
# both CLIs) imports this package first. albumentations 2.x checks PyPI for a newer version on import
# (a network call; offline it prints "UserWarning: Error fetching version info <urlopen error ...>");
# NO_ALBUMENTATIONS_UPDATE=1 turns that off. OPENCV_LOG_LEVEL=ERROR keeps OpenCV's own
# "[ WARN:0@...]" lines (e.g. on a truncated PNG) out of the output: our errors name the file instead.
_os.environ["NO_ALBUMENTATIONS_UPDATE"] = "1"
_os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

__version__ = "0.1.0"
