"""Asterisk shells: FastAGI, ARI and AMI (callback originate). They stand on acd.runtime and
acd.callbacks and do not import one another."""
