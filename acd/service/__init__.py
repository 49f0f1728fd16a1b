"""The live service's composition root: settings, HTTP API, metrics, logs, reload and the
``acd serve`` wiring of the runtime, the telephony shells and the callback dialler."""
