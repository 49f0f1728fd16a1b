"""`acd serve` in ARI mode: a call through the fake ARI is routed, bridged, recorded, counted."""

from __future__ import annotations

from pathlib import Path

from arikit import RU_CALLER, eventually

from acd.service.app import Runtime
from acd.service.settings import load_settings
from acd.testing.fake_ari import FakeAri

ROOT = Path(__file__).resolve().parents[1]
AGENT = "msk-tech-ru-001"


def _settings_file(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "service.yaml"
    path.write_text(f"center: {ROOT / 'config' / 'center.yaml'}\n"
                    f"flows: {ROOT / 'config' / 'ivr'}\n"
                    "agi: {port: 0}\nhttp: {port: 0}\nrecords: {database: acd.sqlite3}\n"
                    f"ari: {{url: '{url}'}}\n"
                    "shutdown_grace_s: 1\nlogs: {format: json}\n")
    return path


def _played(fake: FakeAri, channel_id: str, prompt: str) -> bool:
    return any(e["type"] == "PlaybackStarted"
               and e["playback"]["target_uri"] == f"channel:{channel_id}"
               and e["playback"]["media_uri"].endswith("/" + prompt) for e in fake.event_log)


async def test_serve_routes_a_stasis_call_and_records_it(tmp_path: Path) -> None:
    """Stasis -> IVR -> hold -> agent bridged -> hangup: one call record, counted in /metrics."""
    fake = FakeAri(speed=20.0)
    await fake.start()
    env = {"ACD_ARI_USER": fake.username, "ACD_ARI_PASSWORD": fake.password}
    runtime = Runtime(load_settings(_settings_file(tmp_path, fake.url), env))
    await runtime.start()
    try:
        stasis = runtime.stasis
        assert stasis is not None
        await eventually(lambda: stasis.ready.is_set(), what="Stasis app connected")
        runtime.service.login(AGENT)
        call_id = fake.inject_call(RU_CALLER, "Olga", ("8800100",))
        await eventually(lambda: any(e["type"] == "PlaybackStarted"
                                     and e["playback"]["media_uri"].endswith("/main_menu")
                                     for e in fake.event_log), what="main menu")
        await fake.send_dtmf(call_id, "1")
        # One agent logged in means a long estimated wait: the flow offers a callback, and
        # "2" declines it so the caller is queued.
        await eventually(lambda: runtime.service.router.call_state(call_id) is not None
                         or _played(fake, call_id, "callback_offer"), what="queue or offer")
        if runtime.service.router.call_state(call_id) is None:
            await fake.send_dtmf(call_id, "2")
        await eventually(lambda: runtime.service.router.agent_state(AGENT).value == "on_call",
                         what="agent talking", timeout=5.0)
        call = stasis.calls[call_id]
        assert call.leg is not None
        fake.hangup(call.leg.channel_id)
        await eventually(lambda: runtime.records.written >= 1, what="call record written")
        row = runtime.db.execute("SELECT outcome, queue, language, agent_id FROM calls").fetchone()
        assert row == ("answered", "tech", "ru", AGENT)
        metrics = runtime.registry.get_sample_value(
            "acd_calls_answered_total", {"queue": "tech", "language": "ru", "country": "RU"})
        assert metrics == 1.0
    finally:
        await runtime.stop()
        await fake.stop()
