"""TODO"""

from .app import FailedJobs, main

__all__ = ["FailedJobs", "main"]
