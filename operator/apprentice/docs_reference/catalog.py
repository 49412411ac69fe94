"""Cause and fix of every error code, the prose half of ``errors.md``.

Keys are ``(source, code)``; :mod:`apprentice.docs_reference.errors` collects the codes the
code can produce and the sync test fails when one has no entry here, or an entry here has
no code any more.
"""

from __future__ import annotations

#: (source, code) -> (cause, fix)
ENTRIES: dict[tuple[str, str], tuple[str, str]] = {
    # --- gateway: the `type` of an HTTP error body (and of the facade's exceptions)
    ("gateway", "bad_request"): (
        "The body is not JSON, not the shape the route takes, or a query parameter is wrong.",
        "Compare the request with the [HTTP API reference](http-api.md); the message names "
        "the offending field.",
    ),
    ("gateway", "unauthorized"): (
        "An admin route without `Authorization: Bearer <token>`, or with the wrong token.",
        "Send the value of the variable named by `gateway.admin_token_env` (in Kubernetes, the "
        "task's generated admin-token Secret).",
    ),
    ("gateway", "api_key_missing"): (
        "`gateway.require_api_keys` is on and the request carried no `Authorization: Bearer` "
        "header.",
        "Send an API key for the task (`apprentice keys create -c FILE --task T`, or "
        "`POST /admin/keys`); the OpenAI SDK sends its `api_key` this way.",
    ),
    ("gateway", "api_key_invalid"): (
        "The bearer token is not a key this gateway's store knows (mistyped, truncated, or "
        "from another store).",
        "Use the token printed when the key was created; it cannot be shown again, so create a "
        "new key if it is lost.",
    ),
    ("gateway", "forbidden"): (
        "The caller is known but may not do this.",
        "See the more specific type in the answer (`api_key_revoked`, `api_key_wrong_task`).",
    ),
    ("gateway", "api_key_revoked"): (
        "The key (named by its public id in `details.key_id`) was revoked.",
        "Create a new key; a revoked key stays listed by `apprentice keys list` for audit.",
    ),
    ("gateway", "rate_limited"): (
        "The API key made more requests than its `rate_per_s` allows (per gateway replica).",
        "Wait for `Retry-After` seconds (the OpenAI SDK does), spread the calls, or create a key "
        "with a higher `rate_per_s`.",
    ),
    ("gateway", "api_key_wrong_task"): (
        "The key is valid but scoped to other tasks (`details.tasks`).",
        "Call one of the key's tasks, or create a key that includes this task.",
    ),
    ("gateway", "not_found"): (
        "No such route, or no such model version on a version route.",
        "Check the path against the [HTTP API reference](http-api.md); `apprentice versions` "
        "lists the versions a task has.",
    ),
    ("gateway", "unknown_task"): (
        "The task name in the path (or the `model` of a chat completion) is not configured.",
        "Use one of the names listed in `details.tasks`, or add the task to the config.",
    ),
    ("gateway", "unknown_request"): (
        "`POST /v1/feedback` names a `request_id` (in `details.request_id`) that the "
        "gateway's store does not hold: no task or chat answer gave it, or its request row "
        "is older than `store.request_retention_days` and was pruned (the message gives the "
        "retention).",
        "Send the `request_id` of the answer you are correcting or scoring, within the "
        "retention window; raise `store.request_retention_days` (0 or null: keep every "
        "request) if feedback comes later than that.",
    ),
    ("gateway", "method_not_allowed"): (
        "The route exists but not with this HTTP method.",
        "Use the method the [HTTP API reference](http-api.md) lists.",
    ),
    ("gateway", "request_timeout"): (
        "The client sent its headers or body too slowly (`gateway.header_timeout_s`, "
        "`gateway.body_timeout_s`).",
        "Send the whole request promptly; raise the timeouts only for slow links you trust.",
    ),
    ("gateway", "conflict"): (
        "The request clashes with the task's state: promoting a version that was not "
        "validated, registering a version twice, starting training while one runs.",
        "Read `GET /v1/tasks/{task}/state` and `apprentice versions`, then retry the step "
        "the state allows.",
    ),
    ("gateway", "feedback_unavailable"): (
        "A correction (`output`) names a request recorded before the store kept each "
        "request's input and answer (schema version 10, on the `requests` row), and which "
        "did not call the teacher (a teacher answer's input is read from its example): "
        "nothing holds what was asked.",
        "Send a `score` instead: it is accepted for any recorded request. Corrections on "
        "requests answered since the upgrade work on any replica.",
    ),
    ("gateway", "too_large"): (
        "The body is larger than `gateway.max_body_bytes`.",
        "Send a smaller input, or raise `gateway.max_body_bytes`.",
    ),
    ("gateway", "invalid_input"): (
        "The task input does not match the task's `input_schema`; `details` lists the "
        "JSON Schema errors.",
        "Fix the input, or the task's `input_schema` if it is too strict.",
    ),
    ("gateway", "invalid_correction"): (
        "The feedback's `output` does not match the task's `output_schema`; `details` lists "
        "each path at fault.",
        "Send the corrected answer in the task's output shape.",
    ),
    ("gateway", "budget_exhausted"): (
        "A budget cap (task or global, daily/weekly/monthly) is reached and the task has no "
        "promoted student to answer alone.",
        "Wait for the window to reset, raise the cap, or let the task reach a promoted "
        "version first. See [budget at its cap](../guides/troubleshooting.md#a-budget-at-its-cap).",
    ),
    ("gateway", "key_budget_exhausted"): (
        "The API key's own budget (`budget` of `POST /admin/keys`, daily/weekly/monthly, "
        "across its tasks) has no room for this request's paid calls and no student may answer "
        "instead; `details` name the key, the window, the cap and `resets_at`. Other keys and "
        "the task are not affected.",
        "Wait for `details.resets_at`, or create a key with a larger budget.",
    ),
    ("gateway", "teacher_unavailable"): (
        "The teacher failed and no student could answer instead; `details.reason` is one of "
        "the [teacher reasons](#teacher). 503 for transient causes (retry after "
        "`Retry-After`), 502 for permanent ones.",
        "Follow the entry of `details.reason`.",
    ),
    ("gateway", "stream_broken"): (
        "Only as the last event of a `stream=true` response, never as a status: text of the "
        "answer had gone out when that answer proved unusable (a student's streamed answer "
        "failed validation, or a stream broke off), and the request was answered otherwise "
        "(the teacher stepped in; stored and booked). The streamed text is not the stored "
        "answer; `details.request_id` names the request, and no `data: [DONE]` follows.",
        "Discard the streamed text and send the request again, without `stream` if the "
        "answer must come whole; the OpenAI SDK raises this event as `APIError`.",
    ),
    ("gateway", "student_unavailable"): (
        "The student failed (not loaded, timed out, invalid output) and the teacher could not "
        "be asked instead, usually because the budget is exhausted.",
        "Check `/readyz` and the student server; raise the budget so the teacher can cover.",
    ),
    ("gateway", "overloaded"): (
        "More requests in flight than `gateway.max_concurrency`, or more connections than "
        "`gateway.max_connections`.",
        "Retry after `Retry-After`; scale the gateway out (PostgreSQL store) or raise the "
        "limits. See [scaling](../guides/operations.md#scaling).",
    ),
    ("gateway", "store_unavailable"): (
        "The teacher answered (and was paid) but the store could not record it. "
        "`details.output` carries the answer and `details.request_id` the request; the spend "
        "is booked (retried, else journaled and replayed at the next start).",
        "Use the answer in `details.output`; check the store (disk full, PostgreSQL down). "
        "See [operations](../guides/operations.md#postgresql-for-several-gateway-replicas).",
    ),
    ("gateway", "startup_failed"): (
        "The app could not start: a teacher without its key, a store that cannot open, a "
        "student that cannot load.",
        "The message names the part and the setting; fix it and start again "
        "(`apprentice validate-config` catches config problems first).",
    ),
    ("gateway", "internal_error"): (
        "A bug: an exception the gateway did not expect. The request id is in the logs.",
        "Report it with the gateway's log lines around the request id.",
    ),
    # --- teacher: `details.reason` of teacher_unavailable, and `type` in apprentice_errors_total
    ("teacher", "AuthError"): (
        "The provider refused the API key (401/403).",
        "Check the key in the variable or file named by `remote.api_key_env` / `api_key_file` "
        "(in Kubernetes, the Secret in `spec.teacher.secretRef`). Never retried.",
    ),
    ("teacher", "RateLimited"): (
        "The provider answered 429: requests or tokens per minute exceeded.",
        "Retried with the provider's back-off; set `remote.rate_limits` to stay under the "
        "account's limits, or add `additional_providers`.",
    ),
    ("teacher", "Overloaded"): (
        "The provider is overloaded (Anthropic 529, Gemini 503 UNAVAILABLE).",
        "Transient and retried; add another provider with `additional_providers` to spread "
        "the load.",
    ),
    ("teacher", "QuotaExhausted"): (
        "The provider account is out of credit or hit its spending cap.",
        "Top up or raise the provider's limit; Apprentice's own caps are `budget.*`.",
    ),
    ("teacher", "BadRequest"): (
        "The provider refused the request (400/404/422): an unknown model, a prompt too long, "
        "an unsupported parameter; also a replay teacher asked an input it never recorded.",
        "Check `remote.model` and `remote.max_output_tokens`; the message quotes the provider.",
    ),
    ("teacher", "Timeout"): (
        "No answer within `remote.timeout_s` (per attempt).",
        "Retried; raise `remote.timeout_s` for slow models.",
    ),
    ("teacher", "InvalidOutput"): (
        "The teacher's answer was not valid JSON for the task's `output_schema`, even after "
        "one repair attempt.",
        "Tighten the task `description`, add few-shot `examples`, or loosen `output_schema`.",
    ),
    ("teacher", "ProviderError"): (
        "A provider 5xx, a connection failure or a body the client could not read.",
        "Transient ones are retried; if it persists, check `remote.base_url` and the "
        "provider's status page.",
    ),
    # --- config: the code of each problem `apprentice validate-config` prints
    ("config", "rule"): (
        "A rule across several keys is broken (thresholds out of order, a backend that cannot "
        "serve that fine-tune, caps that contradict each other).",
        "The message names the key to change and the value it must satisfy.",
    ),
    ("config", "env_missing"): (
        "A `${VAR}` in the config names an environment variable that is not set.",
        "Export the variable, or write `${VAR:-default}`.",
    ),
    ("config", "yaml"): (
        "The file is not valid YAML; the path is the line.",
        "Fix the syntax at that line (indentation, a missing colon, an unquoted `:`).",
    ),
    ("config", "type"): (
        "The file's top level is not a mapping.",
        "Start from the repository's `apprentice.yaml`.",
    ),
    ("config", "file"): (
        "The config file cannot be read.",
        "Pass an existing, readable file with `-c`.",
    ),
    ("config", "missing"): (
        "A required key is absent.",
        "Add it; the [configuration reference](configuration.md) marks required keys.",
    ),
    ("config", "extra_forbidden"): (
        "An unknown key: a typo, or a key of another section.",
        "Remove it or fix its spelling against the [configuration reference](configuration.md).",
    ),
    ("config", "enum"): (
        "A value outside an enumeration (a provider, a backend, an evaluator).",
        "Use one of the values the message lists.",
    ),
    ("config", "literal_error"): (
        "A value outside a fixed set of words.",
        "Use one of the values the message lists.",
    ),
    ("config", "validation"): (
        "Any other value the models refuse: a wrong type, a number out of range, a string "
        "that does not match its pattern. The code is pydantic's error type "
        "(`greater_than`, `int_parsing`, ...).",
        "The message states the constraint; the [configuration reference](configuration.md) "
        "lists each key's type and constraints.",
    ),
    # --- operator: Warning Events and the reasons of Stalled conditions
    ("operator", "InvalidSpec"): (
        "The DistilledTask's spec fails the models' validation (a rule CEL cannot express) or "
        "its name is not a valid task name. What serves keeps serving.",
        "`kubectl describe dt` shows the path and the problem; fix the spec.",
    ),
    ("operator", "ApplyFailed"): (
        "The API server refused one of the task's children (a quota, an admission webhook, "
        "RBAC). Retried every poll; one Event per new problem.",
        "Read the Event's message; fix the quota, webhook or RBAC it names.",
    ),
    ("operator", "TrainingNotStarted"): (
        "Training was due but the TrainingJob could not be created.",
        "The message gives the API server's answer; check RBAC and quotas for TrainingJobs "
        "and Jobs in the namespace.",
    ),
    ("operator", "TrainingFailed"): (
        "The trainer Job failed (out of memory, a bad base model, the dataset could not be "
        "fetched). The previous version keeps serving; runs back off.",
        "See [training that failed](../guides/troubleshooting.md#training-that-failed).",
    ),
    ("operator", "Failed"): (
        "On a TrainingJob: its trainer Job failed; the message is the trainer's termination "
        "message.",
        "See [training that failed](../guides/troubleshooting.md#training-that-failed).",
    ),
    ("operator", "WaitingForGPU"): (
        "The trainer pod cannot be scheduled: no node has a free GPU (next to the inference "
        "pod when the volume is ReadWriteOnce).",
        "Add GPU capacity or use `storage.accessMode: ReadWriteMany`. See "
        "[GPU sizing](../guides/operations.md#gpu-sizing-per-profile).",
    ),
    ("operator", "WaitingForNode"): (
        "The trainer pod cannot be scheduled for another reason (selectors, taints, CPU or "
        "memory).",
        "`kubectl describe pod` shows the scheduler's message; adjust `spec.training` "
        "placement or capacity.",
    ),
    ("operator", "Rejected"): (
        "On a ModelVersion: it scored under the threshold on the held-out split, or lost to the "
        "serving version.",
        "Nothing is broken: the current version keeps serving and more examples come. See "
        "[choosing thresholds](../guides/thresholds.md).",
    ),
    ("operator", "VersionRejected"): (
        "On the DistilledTask: a new version was rejected (see `Rejected`).",
        "As for `Rejected`.",
    ),
    ("operator", "GatewayNotified"): (
        "A training run finished but the operator could not tell the gateway "
        "(`training/finished`).",
        "Nothing to do if it is rare: the engine re-derives the state on its next poll. If it "
        "repeats, the operator cannot reach the gateway (see `ApprenticeGatewayUnreachableFrom"
        "Operator` in the [alerts](metrics.md#alerts)).",
    ),
    ("operator", "Alarm"): (
        "The engine raised an alarm: coaching, emergency, drift, shift, a budget threshold.",
        "See [an alarm storm](../guides/troubleshooting.md#an-alarm-storm).",
    ),
}
