"""Calling customers back: the dialler that picks due callback tasks, paces and retries them
(:mod:`~acd.callbacks.dialler`). The telephony shells carry the calls by implementing its
``Outbound`` protocol; this package never imports them."""
