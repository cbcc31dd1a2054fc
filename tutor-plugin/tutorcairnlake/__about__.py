"""The plugin's version: also the version of Cairn its image installs (``v<version>`` of the repository)."""

__version__ = "0.1.0"
