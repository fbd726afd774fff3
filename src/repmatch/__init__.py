"""repmatch: Representation Distribution Matching (iRDM) for one-step generators."""

from ._version import __version__

__all__ = ["__version__"]
