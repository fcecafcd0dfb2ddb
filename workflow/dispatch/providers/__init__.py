"""Parsl execution providers that Parsl itself lacks (NEC NQSV, as run on Osaka's SQUID)."""

from workflow.dispatch.providers.nqsv import NQSVProvider

__all__ = ["NQSVProvider"]
