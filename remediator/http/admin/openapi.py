"""The admin API's OpenAPI 3 document, written as data next to the routes it describes.

tests/admin/test_openapi.py runs schemathesis against the served app, so a drift between this
document and the handlers (a status code, a field, a type) fails the build.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {**schema, "nullable": True}


def _object(required: dict[str, Schema], optional: dict[str, Schema] | None = None) -> Schema:
    return {
        "type": "object",
        "required": list(required),
        "properties": {**required, **(optional or {})},
    }


def _list_of(key: str, item: Schema) -> Schema:
    return _object({key: {"type": "array", "items": item}})


STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
TIME: Schema = {"type": "string", "format": "date-time"}
OBJECT: Schema = {"type": "object"}
REASON: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": 1000,
    "pattern": r"\S",
    "description": "Why; recorded in the audit log with the token's name.",
}
MODE: Schema = {"type": "string", "enum": ["shadow", "approve", "auto"]}


def _body(properties: dict[str, Schema], required: list[str]) -> Schema:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": required,
        "properties": properties,
    }


SCHEMAS: dict[str, Schema] = {
    "Error": _object({"error": STRING}, {"details": {"type": "array", "items": OBJECT}}),
    "Reason": _body({"reason": REASON}, ["reason"]),
    "PauseRequest": _body(
        {
            "scope": {"type": "string", "enum": ["global", "playbook", "target"]},
            "key": {
                "type": "string",
                "maxLength": 512,
                "description": "Empty for global; the playbook name; or Kind/namespace/name.",
            },
            "expires_in_seconds": _nullable(
                {"type": "number", "exclusiveMinimum": True, "minimum": 0, "maximum": 31536000}
            ),
            "reason": REASON,
        },
        ["scope", "reason"],
    ),
    "ModeRequest": _body(
        {
            "mode": _nullable({**MODE, "description": "null: back to the configured mode."}),
            "reason": REASON,
        },
        ["mode", "reason"],
    ),
    "RunRequest": _body(
        {
            "playbook": {"type": "string", "minLength": 1, "maxLength": 256},
            "labels": {
                "type": "object",
                "maxProperties": 64,
                "additionalProperties": {"type": "string", "maxLength": 4096},
                "description": "The labels an alert would carry; they name the target.",
            },
            "dry_run": {"type": "boolean", "default": True},
            "reason": REASON,
        },
        ["playbook", "labels", "reason"],
    ),
    "Pause": _object(
        {
            "id": INTEGER,
            "scope": STRING,
            "key": STRING,
            "reason": STRING,
            "who": STRING,
            "created_at": TIME,
            "expires_at": _nullable(TIME),
            "lifted_at": _nullable(TIME),
            "lifted_by": _nullable(STRING),
        }
    ),
    "Breaker": _object(
        {
            "id": INTEGER,
            "opened_at": TIME,
            "reason": STRING,
            "details": OBJECT,
            "expires_at": _nullable(TIME),
            "closed_at": _nullable(TIME),
            "closed_by": _nullable(STRING),
            "close_reason": _nullable(STRING),
        }
    ),
    "HeldAlert": _object(
        {
            "episode_id": STRING,
            "alertname": STRING,
            "target_key": STRING,
            "namespace": _nullable(STRING),
            "playbook": _nullable(STRING),
            "at": TIME,
        }
    ),
    "Storm": _object(
        {
            "breaker": _nullable(_ref("Breaker")),
            "open": {"type": "boolean"},
            "held_count": INTEGER,
            "held": {"type": "array", "items": _ref("HeldAlert")},
        }
    ),
    "Approval": _object(
        {
            "run_id": INTEGER,
            "episode_id": STRING,
            "playbook": STRING,
            "target_key": STRING,
            "requested_at": TIME,
            "expires_at": TIME,
            "state": {"type": "string", "enum": ["pending", "approved", "denied", "expired"]},
            "decided_at": _nullable(TIME),
            "decided_by": _nullable(STRING),
            "reason": _nullable(STRING),
        }
    ),
    "Episode": _object(
        {
            "id": STRING,
            "fingerprint": STRING,
            "starts_at": TIME,
            "alertname": STRING,
            "status": {"type": "string", "enum": ["firing", "resolved"]},
            "labels": {"type": "object", "additionalProperties": STRING},
            "annotations": {"type": "object", "additionalProperties": STRING},
            "generator_url": STRING,
            "first_seen": TIME,
            "last_seen": TIME,
            "resolved_at": _nullable(TIME),
            "notifications": INTEGER,
            "truncated": {"type": "boolean"},
        }
    ),
    "AuditEntry": _object(
        {
            "id": INTEGER,
            "at": TIME,
            "who": STRING,
            "action": STRING,
            "subject": STRING,
            "reason": STRING,
            "details": OBJECT,
        }
    ),
    "Playbook": _object(
        {
            "name": STRING,
            "mode": MODE,
            "configured_mode": MODE,
            "override": {"type": "boolean"},
            "enabled": {"type": "boolean"},
            "priority": INTEGER,
            "match": {"type": "array", "items": STRING},
            "needs": {"type": "array", "items": STRING},
            "params": OBJECT,
            # What its procedure needs beside the guards' ceilings (engine/budgets.py).
            "budget": {
                "type": "object",
                "additionalProperties": _object(
                    {"declared": {}, "ceiling": INTEGER, "setting": STRING, "says": STRING}
                ),
            },
        }
    ),
    "Replica": _object(
        {
            "id": STRING,
            "name": STRING,
            "started_at": TIME,
            "heartbeat_at": TIME,
            "lease_until": TIME,
            "fenced_at": _nullable(TIME),
            "fenced_by": _nullable(STRING),
            "live": {"type": "boolean"},
            "runs": {"type": "array", "items": INTEGER},
            "timers": {"type": "array", "items": INTEGER},
            "work": {"type": "array", "items": STRING},
            "channels": {"type": "array", "items": STRING},
        }
    ),
    "Status": _object(
        {
            "mode": MODE,
            "started": {"type": "boolean"},
            "breaker": _nullable(_ref("Breaker")),
            "pauses": {"type": "array", "items": _ref("Pause")},
            "pending_approvals": INTEGER,
            "queue": _object(
                {
                    "dispatch": INTEGER,
                    "outbox": {"type": "object", "additionalProperties": INTEGER},
                }
            ),
            "store": _object({"backend": STRING, "ok": {"type": "boolean"}}),
            "playbooks": INTEGER,
            "versions": {"type": "object", "additionalProperties": _nullable(STRING)},
            "replica": _object(
                {"id": STRING, "name": STRING, "fenced": {"type": "boolean"}},
            ),
            "replicas": {"type": "array", "items": _ref("Replica")},
        }
    ),
    "DeadLetter": _object(
        {
            "id": INTEGER,
            "channel": STRING,
            "episode_id": _nullable(STRING),
            "kind": STRING,
            "payload": OBJECT,
            "created_at": TIME,
            "attempts": INTEGER,
            "next_attempt_at": TIME,
            "last_error": _nullable(STRING),
            "dead_at": _nullable(TIME),
        }
    ),
    "EpisodeDetail": _object(
        {
            "episode": _ref("Episode"),
            "decisions": {"type": "array", "items": OBJECT},
            "runs": {"type": "array", "items": OBJECT},
            "actions": {"type": "array", "items": OBJECT},
            "calls": {"type": "array", "items": OBJECT},
            "verifications": {"type": "array", "items": OBJECT},
            "approvals": {"type": "array", "items": _ref("Approval")},
            "escalations": {"type": "array", "items": OBJECT},
            "reports": {"type": "array", "items": OBJECT},
        }
    ),
    "Incident": _object(
        {
            "id": INTEGER,
            "playbook": STRING,
            "target_key": STRING,
            "state": {"type": "string", "enum": ["open", "held", "closed"]},
            "opened_at": TIME,
            "last_seen": TIME,
            "held_at": _nullable(TIME),
            "held_reason": _nullable(STRING),
            "closed_at": _nullable(TIME),
            "closed_by": _nullable(STRING),
            "close_reason": _nullable(STRING),
            "episodes": {"type": "array", "items": OBJECT},
        }
    ),
}

_DESCRIPTIONS = {
    "400": "The body is not a JSON object.",
    "401": "Missing or wrong admin token.",
    "403": "A read-only token on a mutation.",
    "404": "No such object (playbook, episode, pause, approval, channel, message).",
    "409": "Not possible in the current state (already decided, not open, ...).",
    "422": "Invalid input; `details` names each bad field.",
    "503": "The store is unavailable now; retry.",
}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _operation(
    summary: str,
    ok: tuple[str, Schema],
    errors: list[str],
    *,
    body: str | None = None,
    parameters: list[Schema] | None = None,
) -> Schema:
    responses = {ok[0]: _json(ok[1], "OK")}
    for code in ["401", *errors, "503"]:
        responses[code] = _json(_ref("Error"), _DESCRIPTIONS[code])
    operation: Schema = {"summary": summary, "responses": responses}
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    return operation


def _path(name: str, schema: Schema) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


_MUTATION = ["400", "403", "422"]
LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "At most this many.")

SPEC: Schema = {
    "openapi": "3.0.3",
    "info": {
        "title": "remediator admin API",
        "version": "1",
        "description": "Read the decision record and steer the daemon. Bearer tokens from "
        "`admin.tokens`: a read token for GET, an operator token for every POST.",
    },
    "servers": [{"url": "/"}],
    "security": [{"bearer": []}],
    "paths": {
        "/admin/status": {
            "get": _operation(
                "Mode, breaker, pauses, queues, store, versions; this replica and every "
                "replica sharing the store with what each holds",
                ("200", _ref("Status")),
                [],
            )
        },
        "/admin/playbooks": {
            "get": _operation(
                "Playbooks with their mode and parameters",
                ("200", _list_of("playbooks", _ref("Playbook"))),
                [],
            )
        },
        "/admin/playbooks/{name}/mode": {
            "post": _operation(
                "Change a playbook's mode (durable, audited, immediate)",
                (
                    "200",
                    _object({"playbook": STRING, "mode": MODE, "override": {"type": "boolean"}}),
                ),
                [*_MUTATION, "404"],
                body="ModeRequest",
                parameters=[_path("name", STRING)],
            )
        },
        "/admin/episodes": {
            "get": _operation(
                "Episodes, newest first",
                ("200", _list_of("episodes", _ref("Episode"))),
                ["404", "422"],
                parameters=[
                    _query("state", {"type": "string", "enum": ["firing", "resolved"]}, "Status."),
                    _query("playbook", STRING, "Episodes this playbook ran for."),
                    _query("namespace", STRING, "The alert's namespace label."),
                    _query("alertname", STRING, "The alert's name."),
                    _query("since", TIME, "First seen at or after this time (with a zone)."),
                    LIMIT,
                ],
            )
        },
        "/admin/episodes/{episode_id}": {
            "get": _operation(
                "One episode in full: alerts, decisions, runs, actions, calls, reports",
                ("200", _ref("EpisodeDetail")),
                ["404"],
                parameters=[_path("episode_id", STRING)],
            )
        },
        "/admin/episodes/{episode_id}/resend-report": {
            "post": _operation(
                "Queue the episode's reports again",
                ("200", _object({"episode_id": STRING, "queued": INTEGER})),
                [*_MUTATION, "404", "409"],
                body="Reason",
                parameters=[_path("episode_id", STRING)],
            )
        },
        "/admin/pauses": {
            "get": _operation(
                "Active pauses (all=true: every pause ever set)",
                ("200", _list_of("pauses", _ref("Pause"))),
                [],
                parameters=[_query("all", {"type": "boolean"}, "Include lifted and expired.")],
            ),
            "post": _operation(
                "Pause remediation: global, one playbook or one target",
                ("201", _ref("Pause")),
                [*_MUTATION, "404"],
                body="PauseRequest",
            ),
        },
        "/admin/pauses/{switch_id}/resume": {
            "post": _operation(
                "Lift a pause",
                ("200", _ref("Pause")),
                [*_MUTATION, "404", "409"],
                body="Reason",
                parameters=[_path("switch_id", INTEGER)],
            )
        },
        "/admin/breaker": {
            "get": _operation(
                "The open storm breaker (or the last one) and the alerts it held",
                ("200", _ref("Storm")),
                ["422"],
                parameters=[LIMIT],
            )
        },
        "/admin/breaker/close": {
            "post": _operation(
                "Close the open storm breaker",
                ("200", _ref("Breaker")),
                [*_MUTATION, "409"],
                body="Reason",
            )
        },
        "/admin/approvals": {
            "get": _operation(
                "Runs waiting for a human decision",
                ("200", _list_of("approvals", _ref("Approval"))),
                [],
            )
        },
        "/admin/approvals/{run_id}/approve": {
            "post": _operation(
                "Approve: the run acts now, under every guard",
                ("200", _object({"run_id": INTEGER, "state": STRING})),
                [*_MUTATION, "404", "409"],
                body="Reason",
                parameters=[_path("run_id", INTEGER)],
            )
        },
        "/admin/approvals/{run_id}/deny": {
            "post": _operation(
                "Deny: the run never acts",
                ("200", _ref("Approval")),
                [*_MUTATION, "404", "409"],
                body="Reason",
                parameters=[_path("run_id", INTEGER)],
            )
        },
        "/admin/runs": {
            "post": _operation(
                "Run a playbook by hand against a target (dry run by default)",
                (
                    "201",
                    _object(
                        {
                            "episode_id": STRING,
                            "state": STRING,
                            "target": STRING,
                            "dry_run": {"type": "boolean"},
                        }
                    ),
                ),
                [*_MUTATION, "404"],
                body="RunRequest",
            )
        },
        "/admin/dead-letters": {
            "get": _operation(
                "Messages a channel refused for good or could not render, newest first",
                ("200", _list_of("dead_letters", _ref("DeadLetter"))),
                ["404", "422"],
                parameters=[_query("channel", STRING, "One outbox channel."), LIMIT],
            )
        },
        "/admin/dead-letters/{item_id}/resend": {
            "post": _operation(
                "Queue a dead letter again, first of its channel",
                ("200", _ref("DeadLetter")),
                [*_MUTATION, "404", "409"],
                body="Reason",
                parameters=[_path("item_id", INTEGER)],
            )
        },
        "/admin/audit": {
            "get": _operation(
                "Every operator mutation, newest first",
                ("200", _list_of("audit", _ref("AuditEntry"))),
                ["422"],
                parameters=[LIMIT],
            )
        },
        "/admin/incidents": {
            "get": _operation(
                "Incidents (a target's trouble across alert episodes), newest first",
                ("200", _list_of("incidents", _ref("Incident"))),
                ["422"],
                parameters=[
                    _query(
                        "state",
                        {"type": "string", "enum": ["open", "held", "closed"]},
                        "Only incidents in this state.",
                    )
                ],
            )
        },
        "/admin/incidents/{incident_id}": {
            "get": _operation(
                "One incident with the episodes it spans",
                ("200", _ref("Incident")),
                ["404"],
                parameters=[_path("incident_id", INTEGER)],
            )
        },
        "/admin/incidents/{incident_id}/clear": {
            "post": _operation(
                "Clear an incident: the next alert for its target may act again",
                ("200", _ref("Incident")),
                [*_MUTATION, "404", "409"],
                body="Reason",
                parameters=[_path("incident_id", INTEGER)],
            )
        },
    },
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
}
