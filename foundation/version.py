"""The platform's version, named on every result event (``pipeline_version``) and in the API."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("streamscribe")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
