"""The coverage summary `acd check` prints: who can take which calls, per site, skill, language."""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.table import Table

from acd.config.load import LoadedCenter


def print_summary(center: LoadedCenter, console: Console) -> None:
    """Print the center's size, the site x skill x language coverage, countries and warnings."""
    cfg, agents = center.config, center.agents
    newcomers = sum(a.newcomer for a in agents)
    sl = cfg.center.service_level
    console.print(f"[bold]{cfg.center.name}[/bold]  ({center.path})")
    console.print(f"{len(agents)} agents in {len(cfg.agent_groups)} groups on {len(cfg.sites)} "
                  f"sites ({newcomers} newcomers); {len(cfg.queues)} queues; "
                  f"{len(cfg.countries)} countries; {len(cfg.languages)} languages; "
                  f"SL target {sl.target:.0%} within {sl.threshold_s:g} s")
    table = Table(title="Agents per language x site x skill (newcomers in brackets)")
    table.add_column("language")
    columns = [(site, skill) for site in cfg.sites for skill in cfg.skills]
    for site, skill in columns:
        table.add_column(f"{site}\n{skill}", justify="right")
    tenured: Counter[tuple[str, str, str]] = Counter()
    novice: Counter[tuple[str, str, str]] = Counter()
    for a in agents:
        for skill in a.skills:
            for lang in a.languages:
                (novice if a.newcomer else tenured)[(lang, a.site, skill)] += 1
    for lang in cfg.languages:
        cells = []
        for site, skill in columns:
            t, n = tenured[(lang, site, skill)], novice[(lang, site, skill)]
            cells.append("-" if not (t or n) else f"{t}" + (f" ({n})" if n else ""))
        table.add_row(lang, *cells)
    console.print(table)
    ctable = Table(title="Countries")
    for col in ("country", "language", "fallback", "home site", "native speakers"):
        ctable.add_column(col)
    for code, c in cfg.countries.items():
        speakers = sum(1 for a in agents if c.language in a.languages
                       and (a.countries is None or code in a.countries))
        ctable.add_row(code, c.language, ", ".join(c.fallback_languages) or "-", c.home_site,
                       str(speakers))
    console.print(ctable)
    for w in center.warnings:
        console.print(f"[yellow]warning:[/yellow] {w}")
