"""Wiring and entry point: ``python -m apprentice.kube.operator``.

:func:`build_registry` registers every handler on a fresh registry (no import-time
side effects, so tests run several operators in one process); :func:`run` starts kopf
with a :class:`~apprentice.kube.runtime.OperatorContext` in ``memo``. With a peering name, kopf
peering makes replicas take turns: only the highest-priority live replica handles
anything, timers included. Without one the operator runs standalone (one replica).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Callable
from typing import Any, cast

import kopf

from apprentice.kube import GROUP, VERSION
from apprentice.kube.client import KubeClient
from apprentice.kube.handlers import tasks, training, versions
from apprentice.kube.runtime import OperatorContext, OperatorSettings, context_of, settings_from_env

__all__ = ["build_registry", "configure", "main", "require_crds", "run"]

#: kopf calls a login handler with its own keyword arguments (settings, logger, ...).
LoginFn = Callable[..., kopf.ConnectionInfo | None]
TweakFn = Callable[[kopf.OperatorSettings], None]


def configure(settings: kopf.OperatorSettings, ours: OperatorSettings) -> None:
    """kopf settings: our own finalizer and annotation prefix, peering, quiet events."""
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING  # handler log lines are not Events
    settings.peering.mandatory = ours.peering is not None
    settings.peering.standalone = ours.peering is None
    settings.peering.name = ours.peering or "default"
    settings.peering.clusterwide = ours.clusterwide
    settings.peering.stealth = True
    settings.watching.server_timeout = 300
    settings.execution.max_workers = 4
    # No cluster-wide watch of CustomResourceDefinitions and Namespaces (so a namespaced
    # install needs no ClusterRole): resources are discovered once at start, which
    # :func:`require_crds` checks. Namespace globs still need the namespace watch.
    settings.scanning.disabled = not any(set(n) & set("*?[!") for n in ours.namespaces)


async def require_crds(kube: KubeClient) -> None:
    """Fail the start (the pod restarts) when the CRDs are not installed yet."""
    served = await kube.served(f"{GROUP}/{VERSION}")
    missing = sorted({"distilledtasks", "trainingjobs", "modelversions"} - served)
    if missing:
        raise kopf.PermanentError(
            f"the API server does not serve {', '.join(missing)}.{GROUP}/{VERSION}: "
            "install the CRDs (crds/ or the chart with crds.enabled) before the operator"
        )


def build_registry(
    ours: OperatorSettings, *, login: LoginFn | None = None, tweak: TweakFn | None = None
) -> kopf.OperatorRegistry:
    """Every Apprentice handler, ``login`` for the credentials; ``tweak`` edits kopf settings."""
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    async def _startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        configure(settings, ours)
        if tweak is not None:
            tweak(settings)
        if settings.scanning.disabled:
            await require_crds(context_of(memo).kube)

    if login is not None:
        kopf.on.login(registry=registry)(login)
    tasks.register(registry, ours)
    training.register(registry, ours)
    versions.register(registry, ours)
    return registry


def _default_login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    info: kopf.ConnectionInfo | None = kopf.login_with_service_account(**kwargs)
    return info or kopf.login_with_kubeconfig(**kwargs)


async def run(
    ours: OperatorSettings,
    *,
    kube: KubeClient,
    login: LoginFn | None = None,
    stop_flag: asyncio.Event | None = None,
    ready_flag: asyncio.Event | None = None,
    context: OperatorContext | None = None,
    tweak: TweakFn | None = None,
    ignored: set[asyncio.Task[Any]] | None = None,
) -> None:
    """Run the operator until ``stop_flag`` is set (or forever)."""
    ctx = context or OperatorContext(kube=kube, settings=ours)
    liveness = f"http://0.0.0.0:{ours.health_port}/healthz" if ours.health_port else None
    # kopf treats every task created after its start as its own and cancels the leftovers
    # when it stops; ``ignored`` lets an embedding program (a test's teardown) opt out.
    exempt: set[asyncio.Task[Any]] = ignored if ignored is not None else set()
    exempt |= asyncio.all_tasks()
    priority = ours.peering_priority
    if priority is None:  # replicas of equal priority would all pause: pick a random one
        priority = random.SystemRandom().randrange(1, 2**31)
    root_tasks = await kopf.spawn_tasks(
        registry=build_registry(ours, login=login or _default_login, tweak=tweak),
        memo=kopf.Memo(context=ctx),
        clusterwide=ours.clusterwide,
        namespaces=list(ours.namespaces),
        standalone=ours.peering is None,
        peering_name=ours.peering,
        priority=priority,
        # kopf's Identity is a NewType of str with no public alias: a plain str is one.
        identity=cast(Any, ours.identity or None),
        liveness_endpoint=liveness,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )
    await kopf.run_tasks(root_tasks, ignored=exempt)


def main() -> None:
    ours = settings_from_env(os.environ)
    logging.basicConfig(
        level=ours.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if ours.metrics_port:
        import prometheus_client

        prometheus_client.start_http_server(ours.metrics_port)
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        kube = KubeClient.in_cluster()
    else:
        info = kopf.login_with_kubeconfig(
            logger=logging.getLogger("apprentice.kube"), settings=kopf.OperatorSettings()
        )
        if info is None:
            raise SystemExit("no in-cluster service account and no kubeconfig: nothing to talk to")
        kube = KubeClient(
            info.server,
            token=info.token,
            ca_path=str(info.ca_path) if info.ca_path else None,
            insecure=bool(info.insecure),
        )
    asyncio.run(run(ours, kube=kube))


if __name__ == "__main__":
    main()
