"""soul: Higgsfield Soul text-to-image from the command line, through 302.AI."""

__version__ = "0.1.0"
