"""On kind: install the chart, apply the CPU example, watch it become Ready and graduate."""

from __future__ import annotations

import json

import httpx
from kind_cluster import INPUTS, TASK, TASK_NS, Cluster, poll


def test_cpu_task_becomes_ready_and_reaches_steady_state(cluster: Cluster) -> None:
    cluster.apply_task()
    cluster.wait_ready()
    body = cluster.task()
    assert body["status"]["endpoint"] == f"http://{TASK}-gateway.{TASK_NS}.svc:8080"
    inputs = [json.loads(line) for line in INPUTS.read_text().splitlines() if line.strip()]
    with cluster.port_forward() as url, httpx.Client(base_url=url, timeout=120) as http:
        poll(lambda: _ok(http, "/readyz"), 120, 1, "the port-forward")
        sent = 0

        def traffic_until_steady() -> bool:
            nonlocal sent
            for item in inputs[sent % len(inputs) :][:20]:
                response = http.post("/v1/tasks/classify_ticket", json={"input": item})
                assert response.status_code == 200, response.text
                sent += 1
            return str(cluster.task()["status"].get("phase")) == "steady_state"

        poll(traffic_until_steady, 3600, 0, "phase steady_state")
    status = cluster.task()["status"]
    assert status["activeModelVersion"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["Ready"] == "True" and conditions["Degraded"] == "False"
    jobs = json.loads(cluster.kubectl("get", "trainingjobs", "-n", TASK_NS, "-o", "json"))
    assert any(j["status"].get("state") == "Succeeded" for j in jobs["items"])
    versions = json.loads(cluster.kubectl("get", "modelversions", "-n", TASK_NS, "-o", "json"))
    assert any(v["status"].get("state") == "promoted" for v in versions["items"])


def _ok(http: httpx.Client, path: str) -> bool:
    try:
        return http.get(path).status_code == 200
    except httpx.HTTPError:
        return False
