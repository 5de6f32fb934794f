"""A run with a known fake API key, searched for in everything it leaves behind.

perps.studio takes its key in the socket URL, so the key is in a string the client builds at every
dial. The app runs against the perps.studio emulator with a debug log (the ``websockets`` library
logs its requests at that level), a recording, notifications, the status line and an SVG
screenshot; then with a wrong key, whose rejection must be shown without the key. Neither key may
appear in any of it. The token venues' credentials (a JWT, a key and secret and the tokens issued
for them) likewise."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import SecretStr

from app.config import load_settings
from app.model import ConnectionState, Venue
from app.record import Recorder
from app.secrets import Credentials, RedactingFilter
from app.service import SubscriptionService
from app.sim.perps_studio import PerpsStudioEmulator
from app.ui import PerptermApp
from app.venues import build_adapter
from app.venues.base import Endpoint
from tests.conftest import FAST_LIVENESS, eventually, running

GOOD = "ps_test_K3yThatMustNeverBeSeen"
WRONG = "ps_test_Wr0ngKeyThatMustNeverBeSeen"
PS = Venue.PERPS_STUDIO


@pytest.fixture
async def emulator():
    server = PerpsStudioEmulator(seed=3, api_keys=(GOOD,))
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def debug_log(tmp_path: Path):
    """Everything logged at DEBUG, through the filter the CLI installs with ``--log``."""
    path = tmp_path / "perpterm.log"
    handler = logging.FileHandler(path)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()


def screen_text(app: PerptermApp) -> str:
    return app.export_screenshot()


@pytest.mark.parametrize("key", [GOOD, WRONG], ids=["accepted", "rejected"])
async def test_the_key_is_in_no_output(emulator, debug_log: Path, tmp_path: Path, key: str):
    endpoint = Endpoint(emulator.ws_url, emulator.http_url)
    recording = tmp_path / "run.jsonl"
    recorder = Recorder(recording)
    service = SubscriptionService([build_adapter(PS, endpoint, credentials=Credentials(api_key=SecretStr(key)))], recorder=recorder)
    settings = load_settings(venue=str(PS), market="perps:hyperliquid:BTC")
    app = PerptermApp(settings, {PS: endpoint}, liveness={PS: FAST_LIVENESS}, service=service)
    outputs: list[str] = []
    async with app.run_test(size=(140, 45)) as pilot:
        if key == GOOD:
            await eventually(lambda: app.markets.get(PS), timeout=10, what="the market list")
            await eventually(lambda: "LIVE" in screen_text(app), timeout=10, what="the book live")
        else:
            await eventually(
                lambda: any(c.state is ConnectionState.FAILED for c in service.connections(PS)),
                timeout=10,
                what="the rejected key",
            )
            await pilot.pause(0.5)
            reasons = [c.reason for c in service.connections(PS)]
            assert all("API key rejected" in reason for reason in reasons), reasons
            assert "API key rejected" in screen_text(app) or "failed" in screen_text(app)
            outputs += reasons
        app.save_screenshot(filename="shot.svg", path=str(tmp_path))
        outputs.append(screen_text(app))
        outputs += [str(n.message) for n in app._notifications]
        outputs += [str(h) for h in service.health()]
    recorder.close()
    outputs.append((tmp_path / "shot.svg").read_text())
    outputs.append(recording.read_text())
    outputs.append(debug_log.read_text())
    log = debug_log.read_text()
    # The library did log the URL with its key, and the filter took the key out: the test can fail.
    assert "apiKey=***" in log, log[:2000]
    for text in outputs:
        assert key not in text
        assert GOOD not in text and WRONG not in text
    if key == GOOD:
        assert recording.stat().st_size > 0


JWT_HEAD = "eyJhbGciOi"  # every token here begins so: base64url of '{"alg":'


@pytest.mark.parametrize("venue", [Venue.PERPEX, Venue.RAILS])
async def test_tokens_keys_and_secrets_are_in_no_output(debug_log: Path, tmp_path: Path, venue: Venue):
    """Perpex's token rides the Authorization header, Rails' key and secret the token request and
    its issued token the WebSocket subprotocol: all logged by the libraries at DEBUG, none shown."""
    async with running([venue], seed=3) as servers:
        server = servers[venue]
        announced = server.demo_credentials()
        credentials = Credentials.of(announced) if venue is Venue.PERPEX else Credentials.of(
            {"api_key": announced["api_key"], "api_secret": announced["api_secret"]}
        )
        secrets_used = [announced[name] for name in ("token", "api_key", "api_secret") if name in announced]
        endpoint = Endpoint(server.ws_url, server.http_url)
        recording = tmp_path / "run.jsonl"
        recorder = Recorder(recording)
        service = SubscriptionService([build_adapter(venue, endpoint, credentials=credentials)], recorder=recorder)
        market = "BTC-USD" if venue is Venue.PERPEX else "BTC-USDT"
        app = PerptermApp(load_settings(venue=str(venue), market=market), {venue: endpoint}, liveness={venue: FAST_LIVENESS}, service=service)
        outputs: list[str] = []
        async with app.run_test(size=(140, 45)):
            await eventually(lambda: "LIVE" in screen_text(app), timeout=10, what="the book live")
            fills = service.subscribe(venue, "fills")  # the account's socket: the token is used there too
            await eventually(lambda: fills.stream.state.value == "live", timeout=10, what="the account live")
            app.save_screenshot(filename="shot.svg", path=str(tmp_path))
            outputs += [screen_text(app), *(str(n.message) for n in app._notifications), *(str(h) for h in service.health())]
            fills.close()
        recorder.close()
    log = debug_log.read_text()
    outputs += [(tmp_path / "shot.svg").read_text(), recording.read_text(), log]
    # The libraries did log the credential, and the filter took it out: the test can fail.
    assert ("Authorization: Bearer ***" if venue is Venue.PERPEX else "authorization#***") in log, log[:2000]
    for text in outputs:
        assert JWT_HEAD not in text  # the configured token, or a token Rails issued during the run
        for secret in secrets_used:
            assert secret not in text
