"""Test helpers that ship with the engine: fakes that speak Asterisk's real protocols and a
FastAGI load generator. Tests and benchmarks use them; production modules never do."""
