"""Test helpers that ship with the engine: fakes that speak Asterisk's real protocols."""
