"""Helpers for tests (and the record-store benchmark) that put calls through the router so
its observers write call records and agent states.

``writing_service`` builds a router service on the reference center with the writers
attached, in the order given, before its agent logs in; ``complete_call`` puts one answered
call through it, from arrival to hang-up, and makes the agent ready again; ``AnsweringOwner``
is the telephony side of a call whose agent answers every offer at once.
"""

from __future__ import annotations

from pathlib import Path

from acd.config.load import LoadedCenter, load_center
from acd.core.model import Offer
from acd.runtime.router_service import CallOwner, Command, Observer, RouterService

REFERENCE_CENTER = Path(__file__).resolve().parents[1] / "config" / "center.yaml"
#: A Moscow agent of the reference center with the ``tech`` skill in Russian.
AGENT = "msk-tech-ru-001"


class AnsweringOwner:
    """The telephony side of a call: the offered agent answers at once."""

    def __init__(self, service: RouterService) -> None:
        self.service = service

    def handle_command(self, command: Command) -> None:
        if isinstance(command, Offer):
            self.service.offer_answered(command.call_id)


def writing_service(*observers: Observer, center: LoadedCenter | None = None,
                    agent: str | None = AGENT) -> RouterService:
    """A router service on ``center`` (default: the reference center) with ``observers``
    attached in order, then ``agent`` logged in (None: nobody)."""
    service = RouterService(center if center is not None else load_center(REFERENCE_CENTER))
    for observer in observers:
        service.observe(observer)
    if agent is not None:
        service.login(agent)
    return service


def complete_call(service: RouterService, call_id: str, owner: CallOwner | None = None,
                  agent: str = AGENT) -> None:
    """An answered ``tech`` call in Russian from Russia, from arrival to hang-up, then
    ``agent`` (who took it) ready again; ``owner`` defaults to a new `AnsweringOwner`."""
    service.call_arrived(owner if owner is not None else AnsweringOwner(service), call_id,
                         "tech", "ru", "RU")
    service.hangup(call_id)
    service.ready(agent)
