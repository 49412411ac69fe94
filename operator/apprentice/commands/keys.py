"""``apprentice keys create|list|revoke -c FILE``: API keys for the task and chat APIs.

Works on the config's store directly, as ``POST /admin/keys`` does through a running
gateway (the same :class:`~apprentice.gateway.auth.KeyRing`), so keys can be made
before the gateway first starts. ``create`` prints the token once; it cannot be
shown again (the store keeps only its hash). ``--json`` prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from apprentice import config
from apprentice.commands._store_args import load_config_for_tasks
from apprentice.gateway import errors
from apprentice.gateway.auth import KeyRing
from apprentice.store import StoreError, open_store


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "keys", help="create, list or revoke API keys for the task and chat APIs"
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="a new key for one or more tasks (shown once)")
    create.add_argument("--task", action="append", required=True, help="task (repeatable)")
    create.add_argument("--name", help="a label: who or what holds the key")
    create.add_argument("--rate", type=float, help="requests per second it may make (> 0)")
    create.add_argument(
        "--budget",
        action="append",
        metavar="WINDOW=AMOUNT",
        help="the key's spend cap per daily, weekly or monthly window (repeatable), "
        "e.g. --budget daily=5 --budget monthly=100",
    )
    actions.add_parser("list", help="every key with its tasks (never the token)")
    revoke = actions.add_parser("revoke", help="revoke a key by its public id")
    revoke.add_argument("key_id", help="the id shown by create and list (12 hex digits)")
    for p in (create, actions.choices["list"], revoke):
        p.add_argument("-c", "--config", required=True, help="path to apprentice.yaml")
        p.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


async def _act(cfg: config.ApprenticeConfig, args: argparse.Namespace) -> dict[str, Any]:
    store = await asyncio.to_thread(open_store, cfg.store.url)
    ring = KeyRing(lambda: store, required=True, admin_token_env=cfg.gateway.admin_token_env)
    try:
        if args.action == "create":
            known = [t.name for t in cfg.tasks]
            if args.rate is not None and not args.rate > 0:
                raise errors.BadRequest(f"--rate must be more than 0, got {args.rate:g}")
            budget = _budget(args.budget)
            key, token = await ring.create(args.task, args.name, known, args.rate, budget)
            return {**key.public(), "key": token}
        if args.action == "revoke":
            return (await ring.revoke(args.key_id)).public()
        return {"keys": [k.public() for k in await ring.list()]}
    finally:
        await asyncio.to_thread(store.close)


def _budget(given: list[str] | None) -> dict[str, float] | None:
    """``["daily=5", ...]`` as ``{"daily": 5.0}`` (the windows are checked by the key ring)."""
    if not given:
        return None
    out: dict[str, float] = {}
    for item in given:
        window, sep, amount = item.partition("=")
        try:
            out[window.strip()] = float(amount)
        except ValueError:
            sep = ""
        if not sep:
            raise errors.BadRequest(
                f"--budget {item!r}: expected WINDOW=AMOUNT, e.g. daily=5 (USD per day)"
            )
    return out


def _print(args: argparse.Namespace, result: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(result, indent=2))
    elif args.action == "create":
        print(f"key {result['id']} for {', '.join(result['tasks'])}:")
        print(f"  {result['key']}")
        print("store it now: it is not shown again (only its hash is kept)")
    elif args.action == "revoke":
        print(f"key {result['id']} revoked at {result['revoked_at']}")
    else:
        for k in result["keys"]:
            state = f"revoked {k['revoked_at']}" if k["revoked_at"] else "active"
            caps = k.get("budget") or {}
            budget = ",".join(f"{w}={v:g}" for w, v in caps.items()) or "no budget"
            print(f"{k['id']}  {','.join(k['tasks'])}  {k['name'] or '-'}  {budget}  {state}")
        if not result["keys"]:
            print("no API keys")


def run(args: argparse.Namespace) -> int:
    cfg = load_config_for_tasks(args.config, getattr(args, "task", None))
    if cfg is None:
        return 1
    try:
        result = asyncio.run(_act(cfg, args))
    except errors.GatewayError as exc:
        print(f"error: {exc.message} [{exc.docs}]", file=sys.stderr)
        return 1
    except StoreError as exc:
        print(f"error: the store (store.url): {exc}", file=sys.stderr)
        return 1
    _print(args, result)
    return 0
