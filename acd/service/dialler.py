"""The callback dialler ``acd serve`` runs: the callback feature wired to one telephony shell.

:mod:`acd.callbacks` decides which customer to call back and when; the shells carry the calls
(ARI: :mod:`acd.asterisk.ari.outbound`; AMI for AGI-only deployments: :mod:`acd.asterisk.ami`).
The feature does not know the shells: this composition-root module plugs the one the settings
choose into the dialler as its :class:`~acd.callbacks.dialler.Outbound`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from acd.callbacks.dialler import CallbackDialer, DialPolicy, Outbound, business_hours
from acd.runtime.ivrsetup import IvrSetup
from acd.runtime.records import CallbackStore
from acd.runtime.router_service import RouterService
from acd.service.settings import Settings

if TYPE_CHECKING:  # only their types: a shell is imported when the settings choose it
    from acd.asterisk.agi.route import CallPath
    from acd.asterisk.ari.app import StasisApp

log = logging.getLogger(__name__)


def build_dialer(
    settings: Settings,
    store: CallbackStore,
    service: RouterService,
    setup: IvrSetup,
    *,
    stasis: StasisApp | None = None,
    call_path: CallPath | None = None,
) -> CallbackDialer | None:
    """The dialler ``acd serve`` runs (None when callbacks are off or the shell is missing).

    ``via: ari`` needs the running Stasis application; ``via: ami`` needs the FastAGI call
    path (its ``callback`` script reports results) and the AMI credentials.
    """
    cfg = settings.callbacks
    if not cfg.enabled:
        return None
    outbound: Outbound
    if cfg.via == "ari":
        if stasis is None:
            log.error("callbacks via ari need ari.url; the dialler is off")
            return None
        from acd.asterisk.ari.outbound import AriCallbacks, OutboundOptions

        outbound = AriCallbacks(stasis, OutboundOptions(
            cfg.trunk, cfg.caller_id, cfg.ring_timeout_s, flow=cfg.flow))
    else:
        if call_path is None or not settings.ami_user or not settings.ami_secret:
            log.error("callbacks via ami need the FastAGI call path and %s / %s; "
                      "the dialler is off", cfg.ami.user_env, cfg.ami.secret_env)
            return None
        from acd.asterisk.ami import AmiCallbacks, AmiOptions, AmiTarget

        outbound = AmiCallbacks(
            AmiTarget(cfg.ami.host, cfg.ami.port, settings.ami_user, settings.ami_secret,
                      cfg.ami.connect_timeout_s),
            call_path.callback.board,
            AmiOptions(cfg.trunk, cfg.ami.context, cfg.caller_id, cfg.ring_timeout_s),
            concurrency=cfg.concurrency)
    policy = DialPolicy(cfg.retry_delay_s, cfg.max_attempts, cfg.concurrency, cfg.max_ewt_s,
                        cfg.poll_interval_s)
    return CallbackDialer(store, outbound, policy, ewt=service.ewt_new,
                          hours=business_hours(setup))

