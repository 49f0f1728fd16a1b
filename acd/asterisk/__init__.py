"""Asterisk shells: FastAGI and ARI."""
