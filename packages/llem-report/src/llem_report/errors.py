"""The one error ``llem_report`` raises on purpose."""

from llem_schema import LlemError

__all__ = ["ReportError"]


class ReportError(LlemError):
    """A figure or report that cannot be made from what it was given (a result without a
    timeseries, requests without start times, no experiment at all); the message says which
    and what to pass instead."""
