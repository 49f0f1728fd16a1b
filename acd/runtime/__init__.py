"""The router on the event loop (:mod:`~acd.runtime.router_service`), what the telephony shells
need to run the IVR (:mod:`~acd.runtime.ivrsetup`) and the call records and callback tasks in
SQLite or PostgreSQL (:mod:`~acd.runtime.records`, :mod:`~acd.runtime.store`), and stopping an
asyncio task cleanly (:mod:`~acd.runtime.tasks`). It sits below the shells and knows none of
them."""
