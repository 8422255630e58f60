"""synthgen: compose labelled synthetic SEM micrographs from real or procedural particle templates."""

__version__ = "0.1.0"
