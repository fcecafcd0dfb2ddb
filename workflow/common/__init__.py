"""Helpers shared by the campaign, the property job and dispatch; this package imports none of them."""
