"""Command line: ``perpterm`` (the dashboard; the demo when nothing is configured; ``--record FILE``
records what the venues send), ``perpterm sim`` (the emulators on their own) and ``perpterm replay
FILE`` (a recording, on screen or headless: :mod:`app.replay`)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from app.config import INTERVALS, ConfigError, exposed_secrets, load_settings
from app.secrets import RedactingFilter


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="perpterm",
        description="Terminal trading dashboard. With no configuration it runs a live demo on "
        "built-in venue emulators over loopback. `perpterm sim --help` runs the emulators alone; "
        "`perpterm replay --help` replays a recording.",
    )
    parser.add_argument("--config", type=Path, help="TOML configuration file")
    parser.add_argument(
        "--endpoint",
        action="append",
        default=[],
        metavar="VENUE=NETWORK|WS_URL,HTTP_URL",
        help="point a venue at a real endpoint, e.g. hyperliquid=mainnet, hyperliquid=testnet or "
        "hyperliquid=wss://host/ws,https://host (repeatable)",
    )
    parser.add_argument("--market", help="market to show first (venue name, e.g. BTC)")
    parser.add_argument("--interval", choices=INTERVALS, help="candle interval")
    parser.add_argument("--seed", type=int, help="demo emulator seed")
    parser.add_argument("--theme", help="Textual theme name (e.g. perpterm-colorblind)")
    parser.add_argument("--log", type=Path, help="write a debug log to this file")
    parser.add_argument(
        "--scenario", choices=["liquidation"], help="demo story: the demo accounts walk from Normal "
        "through Warning to Liquidating (the liquidation widget's alert)",
    )  # fmt: skip
    parser.add_argument(
        "--record", type=Path, metavar="FILE", help="write every inbound WebSocket frame and REST snapshot "
        "to FILE (JSON Lines) for `perpterm replay FILE`",
    )  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sim"]:
        from app.sim.runner import main as sim_main

        return sim_main(argv[1:])
    if argv[:1] == ["replay"]:
        from app.replay import main as replay_main

        return replay_main(argv[1:])
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(
            args.config,
            args.endpoint,
            market=args.market,
            interval=args.interval,
            seed=args.seed,
            theme=args.theme,
        )
    except ConfigError as exc:
        print(f"perpterm: {exc}", file=sys.stderr)
        return 2
    if args.log:
        logging.basicConfig(filename=args.log, level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        for handler in logging.getLogger().handlers:
            handler.addFilter(RedactingFilter())  # a library may log a URL that holds a key
    if args.config is not None and (warning := exposed_secrets(args.config, settings)) is not None:
        print(f"perpterm: warning: {warning}", file=sys.stderr)

    from app.demo import EmulatorProcess
    from app.record import Recorder
    from app.service import SubscriptionService
    from app.ui import PerptermApp
    from app.venues import build_adapter

    recorder = None
    if args.record:
        try:
            recorder = Recorder(args.record)
        except OSError as exc:
            print(f"perpterm: cannot record to {args.record}: {exc.strerror}", file=sys.stderr)
            return 2
    endpoints = {}
    for venue in settings.enabled_venues():
        if (endpoint := settings.endpoint(venue)) is not None:
            endpoints[venue] = endpoint
    emulators = EmulatorProcess(settings.demo_venues(), settings.seed, scenario=args.scenario)
    try:
        if emulators.venues:
            try:
                endpoints.update(emulators.start())
            except RuntimeError as exc:
                print(f"perpterm: {exc}", file=sys.stderr)
                return 1
        demo = bool(emulators.venues)
        # A configured wallet wins; a demo venue shows its emulator's demo account otherwise.
        wallets = {**emulators.wallets, **settings.wallets()}
        credentials = {**emulators.credentials, **settings.credentials()}
        service = None
        if recorder is not None:
            adapters = [
                build_adapter(venue, endpoint, wallets.get(venue), credentials.get(venue))
                for venue, endpoint in endpoints.items()
            ]
            service = SubscriptionService(adapters, recorder=recorder)
        faults = emulators.send if demo else None
        PerptermApp(
            settings, endpoints, demo=demo, faults=faults, service=service, wallets=wallets, credentials=credentials
        ).run()
    finally:
        emulators.stop()  # also after SIGTERM or SIGHUP, which end the app like `q`
        if recorder is not None:
            recorder.close()
    return 0
