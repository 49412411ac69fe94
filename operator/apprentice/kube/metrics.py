"""The operator's own Prometheus metrics (served on ``APPRENTICE_METRICS_PORT``).

Counters only: rates and totals are what alerting on an operator needs; the tasks' own
numbers (confidence, spend, phase) are the gateways' metrics and the DistilledTask status.
"""

from __future__ import annotations

from prometheus_client import Counter

__all__ = ["GATEWAY_POLLS", "PROMOTIONS", "RECONCILES", "TRAINING_RUNS"]

RECONCILES = Counter(
    "apprentice_operator_reconciles_total",
    "DistilledTask reconciles by result (applied: something changed; unchanged; invalid).",
    ["result"],
)
GATEWAY_POLLS = Counter(
    "apprentice_operator_gateway_polls_total",
    "Reads of a gateway's state endpoint by result (ok, unavailable).",
    ["result"],
)
TRAINING_RUNS = Counter(
    "apprentice_operator_training_runs_total",
    "TrainingJobs by event (started, succeeded, failed).",
    ["event"],
)
PROMOTIONS = Counter(
    "apprentice_operator_model_versions_total",
    "ModelVersions validated, by verdict (promoted, rejected).",
    ["verdict"],
)
