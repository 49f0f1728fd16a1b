"""Fixtures shared by test modules: PostgreSQL for the record-store tests (:mod:`pgkit`)."""

pytest_plugins = ["pgkit"]
