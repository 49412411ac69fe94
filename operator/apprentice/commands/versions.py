"""``apprentice versions | promote | rollback``: model versions of a task.

::

    apprentice versions -c FILE --task T [--json]
    apprentice promote  -c FILE --task T --version vN
    apprentice rollback -c FILE --task T

They act on the store and the model directory directly (a gateway that is not
running picks the change up at its next start). To change a *running* gateway
pass ``--gateway http://host:port``: the command then calls its admin API with
the token from ``gateway.admin_token_env``, and the gateway loads the adapter
into its student at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from apprentice import config


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", required=True, help="path to apprentice.yaml")
    parser.add_argument("--task", required=True, help="task name")
    parser.add_argument(
        "--gateway", default=None, help="act through a running gateway's admin API at this URL"
    )


def register(sub: Any) -> None:
    versions = sub.add_parser("versions", help="list a task's model versions")
    _common(versions)
    versions.add_argument("--json", action="store_true", help="print JSON")
    versions.set_defaults(func=run_versions)
    promote = sub.add_parser("promote", help="serve a model version of a task")
    _common(promote)
    promote.add_argument("--version", required=True, help="version name, e.g. v3")
    promote.set_defaults(func=run_promote)
    rollback = sub.add_parser("rollback", help="serve the previously promoted version again")
    _common(rollback)
    rollback.set_defaults(func=run_rollback)


def _admin_call(cfg: config.ApprenticeConfig, url: str, method: str, path: str) -> Any:
    import httpx

    token = os.environ.get(cfg.gateway.admin_token_env, "")
    if not token:
        raise RuntimeError(f"set {cfg.gateway.admin_token_env} to call the admin API")
    resp = httpx.request(
        method, url.rstrip("/") + path, headers={"Authorization": f"Bearer {token}"}, timeout=600
    )
    body = resp.json()
    if resp.status_code >= 400:
        raise RuntimeError(body.get("error", {}).get("message", resp.text))
    return body


async def _offline(
    cfg: config.ApprenticeConfig, task: str, action: str, version: str | None
) -> Any:
    from apprentice.gateway.facade import Apprentice

    app = Apprentice.from_config(cfg)
    # Offline: no student is loaded, nothing is served; only the store and files change.
    await app.gateway.start(serving=False)
    try:
        app.check_task(task)
        if action == "versions":
            found, active = await app.gateway.versions(task)
            return {"versions": [v.to_json() for v in found], "active": active}
        if action == "promote":
            assert version is not None
            return {"active": await app.gateway.promote(task, version)}
        return {"active": await app.gateway.rollback(task)}
    finally:
        await app.close()


def _do(args: argparse.Namespace, action: str, version: str | None = None) -> Any:
    cfg = config.load(args.config)
    if args.gateway:
        base = f"/admin/tasks/{args.task}"
        path = {
            "versions": f"{base}/versions",
            "promote": f"{base}/versions/{version}/promote",
            "rollback": f"{base}/rollback",
        }[action]
        return _admin_call(cfg, args.gateway, "GET" if action == "versions" else "POST", path)
    return asyncio.run(_offline(cfg, args.task, action, version))


def _guard(args: argparse.Namespace, action: str, version: str | None = None) -> Any:
    from apprentice.gateway import errors

    try:
        return _do(args, action, version)
    except config.ConfigError as exc:
        print(str(exc), file=sys.stderr)
    except errors.GatewayError as exc:
        print(f"error: {exc.message} [{exc.docs}]", file=sys.stderr)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
    return None


def run_versions(args: argparse.Namespace) -> int:
    body = _guard(args, "versions")
    if body is None:
        return 1
    if args.json:
        print(json.dumps(body, indent=2))
        return 0
    rows = body["versions"]
    if not rows:
        print(f"{args.task}: no model versions yet")
        return 0
    print(f"{'version':<9} {'state':<10} {'held-out':>8}  {'created':<25} reason")
    for row in rows:
        score = "-" if row["heldout_score"] is None else f"{row['heldout_score']:.3f}"
        mark = "*" if row["version"] == body["active"] else " "
        print(
            f"{mark}{row['version']:<8} {row['state']:<10} {score:>8}  "
            f"{row['created_at']:<25} {row['reason'] or ''}"
        )
    return 0


def run_promote(args: argparse.Namespace) -> int:
    body = _guard(args, "promote", args.version)
    if body is None:
        return 1
    print(f"{args.task}: active version {body['active']}")
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    body = _guard(args, "rollback")
    if body is None:
        return 1
    print(f"{args.task}: active version {body['active']}")
    return 0
