"""The file-descriptor budget of ``acd serve``.

Every FastAGI session and every HTTP connection holds one descriptor; ARI, AMI, the database
(with its WAL and shared memory), logs and the spare descriptors of the listeners need a few
more. At start the soft ``nofile`` limit is raised as far as the hard limit allows, and the
service refuses to start (exit 2) when ``agi.max_sessions`` plus ``http.max_connections``
plus `FD_RESERVE` do not fit, rather than failing call by call once it is busy.
"""

from __future__ import annotations

import contextlib

from acd.errors import InputError, Problem
from acd.service.settings import Settings

#: Descriptors kept for everything but sessions: stdio, logs, the database and its WAL and
#: shared memory, ARI and AMI sockets, listeners and their spare descriptors, imports.
FD_RESERVE = 64


def fd_needed(settings: Settings) -> int:
    """Descriptors the settings may use at once."""
    return settings.agi.max_sessions + settings.http.max_connections + FD_RESERVE


def raise_nofile(wanted: int) -> int:
    """Raise the soft ``nofile`` limit towards the hard one (up to ``wanted`` or more);
    returns the soft limit in force afterwards."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, wanted)
    if soft != resource.RLIM_INFINITY and soft < target:
        # Some systems cap below the hard limit: keep what we have then.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft if soft != resource.RLIM_INFINITY else max(wanted, 1 << 20)


def check_fd_budget(settings: Settings) -> int:
    """Raise the limit and check the budget fits; returns the soft limit.

    Raises `InputError` (exit 2) naming the settings keys and the numbers when it does not.
    """
    needed = fd_needed(settings)
    limit = raise_nofile(needed)
    if needed > limit:
        a, h = settings.agi.max_sessions, settings.http.max_connections
        raise InputError([Problem(
            settings.file or "<defaults>", "agi.max_sessions", a,
            f"agi.max_sessions ({a}) + http.max_connections ({h}) + {FD_RESERVE} reserved "
            f"file descriptors = {needed}, more than the nofile limit of {limit} (the hard "
            f"limit allows no more): lower agi.max_sessions or http.max_connections, or "
            f"raise the limit (ulimit -n, LimitNOFILE= in a systemd unit)")])
    return limit
