"""Inspector: an open-source computer-vision inspection station."""

__version__ = "0.1.0"
