"""``burstbus user …``: people's web accounts and API tokens, kept in ``state.sqlite``.

An operator's commands, run beside a running service (SQLite lets both write; a change is
seen by the next request: a disabled account's sessions and tokens stop at once). Passwords
are read from the terminal without echo, or from standard input when it is not a terminal
(``--password-stdin``, for provisioning scripts), never from the command line, where every
user of the machine could read them in the process list. What an account may do is what
``[acl]`` gives its JID: ``user list`` shows it beside each account, so a typo in either place
shows up here rather than at 3 a.m.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from burstbus import accounts
from burstbus.acl import ROLE_NAMES, Acl, AclSection
from burstbus.chat import Asker
from burstbus.config import Config
from burstbus.state import StateStore

Command = Callable[[Config, argparse.Namespace], Coroutine[Any, Any, int]]


def add_parsers(commands: Any) -> dict[str, Command]:
    p = commands.add_parser("user", help="web accounts and API tokens: add, passwd, disable, enable, list, token, tokens, revoke")
    sub = p.add_subparsers(dest="user_command", required=True, metavar="USER_COMMAND")
    for name, text in (("add", "make an account for a person (named by their bare JID, as in [acl])"),
                       ("passwd", "set a new password (ends the account's sessions)")):
        s = sub.add_parser(name, help=text)
        s.add_argument("name", metavar="JID")
        s.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    for name, text in (("disable", "refuse sign-in; end the account's sessions; its tokens stop working"),
                       ("enable", "allow sign-in again")):
        sub.add_parser(name, help=text).add_argument("name", metavar="JID")
    sub.add_parser("list", help="accounts, with the role [acl] gives each")
    s = sub.add_parser("token", help="make an API token for scripts (printed once; only its hash is kept)")
    s.add_argument("name", metavar="JID")
    s.add_argument("--scope", choices=ROLE_NAMES, default="viewer",
                   help="the most it may do (it never exceeds the person's [acl] role); default viewer")
    s.add_argument("--days", type=int, default=90, help="days until it expires (1-366; default 90)")
    s.add_argument("--label", default="", help="what it is for, shown in 'user tokens'")
    s = sub.add_parser("tokens", help="list API tokens (never their secrets)")
    s.add_argument("name", nargs="?", metavar="JID", help="only this person's")
    sub.add_parser("revoke", help="revoke an API token by its id").add_argument("token_id", metavar="TOKEN_ID")
    return {"user": cmd_user}


def _say(line: str) -> None:
    print(line, file=sys.stderr)


def _when(moment: float | None) -> str:
    return "-" if moment is None else datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _read_password(args: argparse.Namespace, name: str) -> str | None:
    if args.password_stdin or not sys.stdin.isatty():
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    first = getpass.getpass(f"New password for {name}: ")
    if getpass.getpass("Again: ") != first:
        _say("burstbus user: the two passwords differ; nothing changed")
        return None
    return first


async def cmd_user(config: Config, args: argparse.Namespace) -> int:
    state = await StateStore.open(config.state_path)
    try:
        await state.run(accounts.ensure_schema)
        return await _run(config, args, state)
    except accounts.AccountError as exc:
        _say(f"burstbus user {args.user_command}: {exc}")
        return 1
    finally:
        await state.close()


async def _run(config: Config, args: argparse.Namespace, state: StateStore) -> int:
    command = args.user_command
    if command in ("add", "passwd"):
        name = accounts.account_name(args.name)
        if command == "passwd" and await state.run(lambda c: accounts.get_account(c, name)) is None:
            raise accounts.AccountError(f"{name} has no account (burstbus user add {name})")
        password = _read_password(args, name)
        if password is None:
            return 1
        hashed = await asyncio.get_running_loop().run_in_executor(None, accounts.hash_password, password)
        if command == "add":
            await state.transaction(lambda c: accounts.add_account(c, name, hashed))
            role = Acl(config.section(AclSection)).grant(Asker(jid=name, via="dm", transport="web"))
            note = "" if role.listed else f" (not in [acl]: the default role, {role.role.label}, applies)"
            print(f"{name}: account made; role {role.role.label}{note}")
        else:
            await state.transaction(lambda c: accounts.set_password(c, name, hashed))
            print(f"{name}: password changed; its sessions ended")
        return 0
    if command in ("disable", "enable"):
        await state.transaction(lambda c: accounts.set_disabled(c, args.name, command == "disable"))
        print(f"{accounts.account_name(args.name)}: {command}d")
        return 0
    if command == "list":
        acl = Acl(config.section(AclSection))
        rows = await state.run(accounts.list_accounts)
        if not rows:
            print("no accounts (burstbus user add JID)")
        for account in rows:
            grant = acl.grant(Asker(jid=account.name, via="dm", transport="web"))
            listed = "" if grant.listed else " (default role: not in [acl])"
            status = "disabled" if account.disabled else "active"
            print(f"{account.name}\t{status}\trole {grant.role.label}{listed}\tsince {_when(account.created_at)}")
        return 0
    if command == "token":
        secret, info = await state.transaction(
            lambda c: accounts.add_token(c, args.name, args.scope, days=args.days, label=args.label))
        _say(f"token {info.id} for {info.name}, scope {info.scope}, expires {_when(info.expires_at)}; "
             "shown once, keep it secret:")
        print(secret)
        return 0
    if command == "tokens":
        now = time.time()
        tokens = await state.run(lambda c: accounts.list_tokens(c, args.name))
        if not tokens:
            print("no API tokens")
        for token in tokens:
            print(f"{token.id}\t{token.name}\tscope {token.scope}\t{token.state(now)}\texpires {_when(token.expires_at)}"
                  f"\tlast used {_when(token.last_used_at)}\t{token.label}")
        return 0
    if command == "revoke":
        info = await state.transaction(lambda c: accounts.revoke_token(c, args.token_id))
        print(f"token {info.id} of {info.name} revoked")
        return 0
    raise AssertionError(command)
