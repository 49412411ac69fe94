"""The Kubernetes shell: custom resources, pure manifest builders and the kopf operator.

All custom resources live in one API group and version, stated here once::

    apprentice.dev/v1alpha1: DistilledTask (dt), TrainingJob (tj), ModelVersion (mv)

Modules: ``models`` (pydantic spec/status models, the CRD source), ``crds`` (CRD
generation), ``manifests`` (pure builders), ``client`` (a small async Kubernetes
client), ``gateway_client`` (the gateway's admin/state API), ``handlers`` (thin kopf
handlers), ``operator`` (wiring and entry point), ``tools`` (helm/kubectl binaries).
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
