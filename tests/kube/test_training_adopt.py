"""A TrainingJob made by hand (``spec.taskRef`` only) is labelled like the operator's own."""

from __future__ import annotations

import kopf
from kube_samples import classify

from apprentice.kube import TASK_LABEL
from apprentice.kube.handlers.training import _adopt
from apprentice.kube.manifests import TaskObject
from apprentice.kube.objects import labels


def test_a_hand_made_training_job_gets_the_task_labels() -> None:
    task = TaskObject.from_body(classify())
    patch = kopf.Patch()
    _adopt(task, {"name": "by-hand", "labels": {"team": "ml"}}, patch)
    assert patch["metadata"]["labels"] == labels(task.name, "training")
    assert patch["metadata"]["labels"][TASK_LABEL] == task.name  # "team" stays (merge patch)
    assert "ownerReferences" not in patch["metadata"]  # needs delete, not granted


def test_the_operators_own_training_job_is_left_as_it_is() -> None:
    task = TaskObject.from_body(classify())
    patch = kopf.Patch()
    _adopt(task, {"labels": labels(task.name, "training")}, patch)
    assert not patch
