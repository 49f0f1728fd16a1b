"""The router's policy built from a validated center config (the core never reads the YAML)."""

from __future__ import annotations

from acd.config.schema import CenterConfig
from acd.core.policy import CenterPolicy, CountryPolicy, ExpansionStep, QueuePolicy


def center_policy(config: CenterConfig) -> CenterPolicy:
    """The :class:`~acd.core.policy.CenterPolicy` for ``config``, queues in config order."""
    queues = {}
    for name, q in config.queues.items():
        r = q.routing
        queues[name] = QueuePolicy(
            skill=q.skill,
            priority=q.priority,
            wrap_up_s=q.wrap_up_s,
            ring_timeout_s=q.ring_timeout_s,
            max_length=q.max_length,
            max_wait_s=q.max_wait_s,
            overflow=q.overflow,
            aht_hint_s=q.aht_hint_s,
            sl_threshold_s=config.sl_for(name).threshold_s,
            min_level=r.min_level,
            all_sites=r.sites == "all",
            newcomers=r.newcomers,
            agent_selection=r.agent_selection,
            call_selection=r.call_selection,
            site_affinity=r.site_affinity,
            expansion=tuple(ExpansionStep(
                after_s=step.after_s, min_level=step.min_level, add_sites=step.add_sites,
                accept_fallback_languages=step.accept_fallback_languages,
                include_newcomers=step.include_newcomers, offer_callback=step.offer_callback,
                overflow=step.overflow) for step in q.expansion))
    return CenterPolicy(
        queues=queues,
        sites=tuple(config.sites),
        skills=tuple(config.skills),
        languages=tuple(config.languages),
        countries={code: CountryPolicy(c.language, tuple(c.fallback_languages), c.home_site)
                   for code, c in config.countries.items()},
        pause_reasons=tuple(config.pause_reasons),
        default_language=config.center.default_language,
        default_queue=config.center.default_queue,
        rona_pause_reason=config.rona.pause_reason,
        rona_auto_ready_after_s=config.rona.auto_ready_after_s,
    )
