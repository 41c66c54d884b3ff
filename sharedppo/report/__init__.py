"""TODO"""

from .cli import main, report

__all__ = ["main", "report"]
