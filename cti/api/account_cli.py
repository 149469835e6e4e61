"""``hotline account add``: create a desktop/console account in PostgreSQL.

The password comes from ``HOTLINE_ACCOUNT_PASSWORD`` or is asked for on the
terminal; it never appears on the command line (other users can read those).
"""

from __future__ import annotations

import argparse
import getpass
import os
from typing import Any

import asyncpg

from common.db import migrate, redact_dsn
from cti.config import ConfigError

from .accounts import AccountStore, AuditLog
from .passwords import PasswordError
from .roles import Role

__all__ = ["add_account_arguments", "run_account"]


def add_account_arguments(sub: Any) -> None:
    account = sub.add_parser("account", help="manage agent desktop / supervisor console accounts")
    actions = account.add_subparsers(dest="account_command", required=True)
    add = actions.add_parser("add", help="create an account")
    add.add_argument("--username", required=True)
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--agent", default=None, help="the agent extension (role agent only)")
    add.add_argument("--name", default="", help="display name")
    add.add_argument(
        "--phone", default=None, help="a supervisor's softphone endpoint (rung for monitoring)"
    )
    add.add_argument(
        "--dsn",
        default=os.environ.get("HOTLINE_PG_DSN", ""),
        help="PostgreSQL DSN (default: HOTLINE_PG_DSN)",
    )


def _password() -> str:
    password = os.environ.get("HOTLINE_ACCOUNT_PASSWORD")
    if password is None:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise ConfigError("password", "the two entries differ")
    return password


async def run_account(args: argparse.Namespace) -> int:
    if not args.dsn:
        raise ConfigError("--dsn", "missing; pass it or set HOTLINE_PG_DSN")
    role = Role(args.role)
    if (role is Role.AGENT) != bool(args.agent):
        raise ConfigError("--agent", "required for role agent, and only for it")
    password = _password()
    await migrate(args.dsn)
    pool = await asyncpg.create_pool(args.dsn, min_size=1, max_size=2)
    try:
        try:
            account = await AccountStore(pool).add(
                args.username,
                role,
                password,
                agent=args.agent,
                display_name=args.name,
                phone=args.phone,
            )
        except PasswordError as exc:
            raise ConfigError("password", str(exc)) from None
        except asyncpg.UniqueViolationError:
            raise ConfigError(
                "--username", f"{args.username!r} (or agent {args.agent!r}) already has an account"
            ) from None
        except asyncpg.CheckViolationError as exc:
            raise ConfigError("--username", f"not accepted by the database: {exc}") from None
        await AuditLog(pool).record("(cli)", "account_created", subject=account.username)
    finally:
        await pool.close()
    print(
        f"account {account.username} ({account.role.value}"
        + (f", agent {account.agent}" if account.agent else "")
        + f") created in {redact_dsn(args.dsn)}"
    )
    return 0
