"""The ``hotline`` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from cti.config import ConfigError, load_config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hotline", description="12345/96181 hotline CTI engine on Asterisk"
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("HOTLINE_LOG_LEVEL", "WARNING"),
        help="DEBUG, INFO, WARNING (default), ERROR",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo",
        help="run the whole call path on a private stack with robot agents "
        "and a stream of citizen calls",
    )
    demo.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="S",
        help="stop after S seconds (default: until Ctrl-C)",
    )
    demo.add_argument("--agents", type=int, default=4, help="robot agents (default 4)")
    demo.add_argument(
        "--calls-per-minute", type=float, default=12.0, help="citizen call rate (default 12)"
    )
    demo.add_argument("--seed", type=int, default=None, help="random seed for a repeatable stream")
    demo.add_argument(
        "--config", type=Path, default=None, help="TOML config file (lines, timeouts)"
    )

    events = sub.add_parser("events", help="print every AMI event as one JSON object per line")
    events.add_argument("--ami-host", default=os.environ.get("HOTLINE_AMI_HOST", "127.0.0.1"))
    events.add_argument(
        "--ami-port", type=int, default=int(os.environ.get("HOTLINE_AMI_PORT", "5038"))
    )
    events.add_argument("--ami-user", default=os.environ.get("HOTLINE_AMI_USER", "hotline"))
    events.add_argument(
        "--ami-secret",
        default=os.environ.get("HOTLINE_AMI_SECRET"),
        help="AMI secret (or HOTLINE_AMI_SECRET; prefer the variable: "
        "command lines are visible to other users)",
    )

    serve = sub.add_parser("serve", help="run the engine against the configured Asterisk")
    serve.add_argument("--config", type=Path, required=True, help="TOML config file")
    serve.add_argument(
        "--spill-dir",
        type=Path,
        default=None,
        help="where the event log keeps events while PostgreSQL is unreachable",
    )

    from cti.kpi_cli import add_kpi_arguments

    add_kpi_arguments(sub)

    from cti.api.account_cli import add_account_arguments

    add_account_arguments(sub)

    from cti.features import known_features, load_feature

    for name in known_features():
        feature = load_feature(name)
        if feature.commands is not None:
            feature.commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.command == "demo":
            from cti.demo import DemoOptions, run_demo

            if args.agents < 1:
                raise ConfigError("--agents", "must be at least 1")
            if args.calls_per_minute <= 0:
                raise ConfigError("--calls-per-minute", "must be greater than 0")
            base = load_config(args.config)
            asyncio.run(
                run_demo(
                    DemoOptions(
                        duration_s=args.duration,
                        agents=args.agents,
                        calls_per_minute=args.calls_per_minute,
                        seed=args.seed,
                    ),
                    base_config=base,
                )
            )
        elif args.command == "events":
            from cti.events_cli import run_events

            if not args.ami_secret:
                raise ConfigError("--ami-secret", "missing; pass it or set HOTLINE_AMI_SECRET")
            asyncio.run(
                run_events(
                    host=args.ami_host,
                    port=args.ami_port,
                    username=args.ami_user,
                    secret=args.ami_secret,
                )
            )
        elif args.command == "serve":
            from cti.serve import run_serve

            asyncio.run(
                run_serve(load_config(args.config, env=os.environ), spill_dir=args.spill_dir)
            )
        elif args.command == "kpi":
            from cti.kpi_cli import run_kpi

            return asyncio.run(run_kpi(args))
        elif args.command == "account":
            from cti.api.account_cli import run_account

            return asyncio.run(run_account(args))
        elif callable(getattr(args, "func", None)):
            return int(args.func(args))
    except ConfigError as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
