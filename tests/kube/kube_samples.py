"""Sample DistilledTask bodies shared by the tests."""

from __future__ import annotations

import copy
from typing import Any

NS = "ns1"

CLASSIFY: dict[str, Any] = {
    "apiVersion": "apprentice.dev/v1alpha1",
    "kind": "DistilledTask",
    "metadata": {
        "name": "classify-ticket",
        "namespace": NS,
        "uid": "uid-dt-1",
        "generation": 1,
        "resourceVersion": "1",
    },
    "spec": {
        "name": "classify_ticket",
        "description": "Classify support tickets by category and priority",
        "inputSchema": {"text": "str", "metadata": "dict"},
        "outputSchema": {"category": "str", "priority": "int", "confidence": "float"},
        "evaluator": "structured_match",
        "matchFields": ["category", "priority"],
        "confidenceThresholds": {
            "phase1ToPhase2": 50,
            "phase2ToPhase3": 0.85,
            "coachingTrigger": 0.7,
            "emergencyThreshold": 0.5,
        },
        "teacher": {
            "provider": "anthropic",
            "model": "claude-sonnet-4-5-20250929",
            "secretRef": {"name": "anthropic", "key": "api-key"},
        },
        "student": {"baseModel": "meta-llama/Llama-3.2-1B-Instruct"},
        "gateway": {"adminTokenSecretRef": {"name": "gateway-admin", "key": "token"}},
        "budget": {"daily": 2.0, "weekly": 10.0},
    },
}


def classify(**spec_changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(CLASSIFY)
    body["spec"].update(spec_changes)
    return body
