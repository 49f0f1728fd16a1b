"""The router on the event loop (:mod:`~acd.runtime.router_service`), what the telephony shells
need to run the IVR (:mod:`~acd.runtime.ivrsetup`) and the call records and callback tasks in
SQLite (:mod:`~acd.runtime.records`). It sits below the shells and knows none of them."""
