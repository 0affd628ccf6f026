"""Who may call what: THE table of (method, route path) -> roles allowed.

Every route of the application needs a rule here; a route without one is refused at run
time (403) and fails ``tests/test_auth_policy.py``. Add a rule next to the router it
belongs to, using the route's path template exactly as FastAPI declares it.

``PUBLIC`` routes need no login; ``METRICS`` is open unless ``metrics.token`` is set.
"""

from __future__ import annotations

from gateway.auth.models import Role

A, R, B, I = Role.ADMIN, Role.RADIOLOGIST, Role.BILLING, Role.INTEGRATION  # noqa: E741

PUBLIC = frozenset({"*public*"})
METRICS = frozenset({"*metrics*"})
ANY_USER = frozenset(Role.ALL)
STAFF = frozenset({A, R, B})  # people using the web UI
ADMIN = frozenset({A})

RULES: dict[tuple[str, str], frozenset[str]] = {
    # health, metrics, docs
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/metrics"): METRICS,
    ("GET", "/openapi.json"): ANY_USER,
    ("GET", "/docs"): ANY_USER,
    ("GET", "/docs/oauth2-redirect"): ANY_USER,
    ("GET", "/redoc"): ANY_USER,
    # studies (patient data): clinical staff, billing (fixes unmatched studies), systems
    ("GET", "/api/studies"): frozenset({A, R, B, I}),
    ("GET", "/api/studies/{study_uid}"): frozenset({A, R, B, I}),
    ("GET", "/api/studies/{study_uid}/viewer"): STAFF,
    ("POST", "/api/studies/{study_uid}/link"): frozenset({A, R, B}),
    ("POST", "/api/studies/{study_uid}/forward/retry"): ADMIN,  # as /api/queue/retry
    ("GET", "/api/series/{series_uid}/thumbnail"): STAFF,
    # orders and HL7 (billing sees the HL7 log with patient data masked)
    ("GET", "/api/orders"): frozenset({A, R, B, I}),
    ("GET", "/api/orders/{accession}"): frozenset({A, R, B, I}),
    ("GET", "/api/hl7/messages"): frozenset({A, B, I}),
    ("GET", "/api/hl7/messages/{message_id}"): frozenset({A, B, I}),
    # forward queue
    ("GET", "/api/queue"): frozenset({A, I}),
    ("POST", "/api/queue/retry"): ADMIN,
    # storage commitment requests from modalities and their reports
    ("GET", "/api/commitments"): frozenset({A, I}),
    ("GET", "/api/commitments/{transaction_uid}"): frozenset({A, I}),
    # norms, costs, reports
    ("GET", "/api/norms"): frozenset({A, B, I}),
    ("GET", "/api/norms/imports"): frozenset({A, B}),
    ("POST", "/api/norms/import"): ADMIN,
    ("GET", "/api/costs/unmapped"): frozenset({A, B, I}),
    ("GET", "/api/costs/{study_uid}"): frozenset({A, B, I}),
    ("POST", "/api/costs/{study_uid}/recost"): frozenset({A, B}),
    ("POST", "/api/costs/{study_uid}/inputs"): frozenset({A, B}),
    ("GET", "/api/reports/costs"): frozenset({A, B, I}),
    # users and audit
    ("GET", "/api/me"): ANY_USER,
    ("GET", "/api/users"): ADMIN,
    ("POST", "/api/users"): ADMIN,
    ("POST", "/api/users/{name}/disable"): ADMIN,
    ("POST", "/api/users/{name}/tokens"): ADMIN,
    ("GET", "/api/audit"): ADMIN,
    ("GET", "/api/audit/export"): ADMIN,
    # web UI (server-rendered pages; forms carry a CSRF token)
    ("GET", "/static"): PUBLIC,
    ("GET", "/"): STAFF,
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("POST", "/logout"): ANY_USER,
    ("GET", "/lang/{code}"): PUBLIC,
    ("GET", "/ui/dashboard"): frozenset({A, R}),
    ("GET", "/ui/orders"): frozenset({A, R, B}),
    ("GET", "/ui/studies"): STAFF,
    ("GET", "/ui/unmatched"): frozenset({A, R, B}),
    ("GET", "/ui/queue"): ADMIN,
    ("GET", "/ui/hl7"): frozenset({A, B}),
    ("GET", "/ui/norms"): frozenset({A, B}),
    ("GET", "/ui/billing"): frozenset({A, B}),
    ("GET", "/ui/audit"): ADMIN,
    ("GET", "/ui/users"): ADMIN,
}


def rule_for(method: str, path: str) -> frozenset[str] | None:
    """The roles allowed on (method, route path template); None if there is no rule.

    HEAD follows GET.
    """
    method = "GET" if method == "HEAD" else method
    return RULES.get((method, path))


def allows(rule: frozenset[str], role: str) -> bool:
    return role in rule


# Routes whose every call is written to the audit log (gateway.core.audit), with the caller,
# the source address, the route's path parameters as the object and the HTTP status as
# the outcome: views of patient data, exports and changes. Add your route here too.
AUDITED: dict[tuple[str, str], str] = {
    # The lists name patients too: audited with their filters (a search by name included).
    ("GET", "/api/studies"): "view.study_list",
    ("GET", "/api/orders"): "view.order_list",
    ("GET", "/api/studies/{study_uid}"): "view.study",
    ("POST", "/api/studies/{study_uid}/link"): "change.link",
    ("GET", "/api/orders/{accession}"): "view.order",
    ("GET", "/api/hl7/messages"): "view.hl7_messages",
    ("GET", "/api/hl7/messages/{message_id}"): "view.hl7_message",
    ("GET", "/api/costs/{study_uid}"): "view.costs",
    ("POST", "/api/costs/{study_uid}/recost"): "change.recost",
    ("POST", "/api/costs/{study_uid}/inputs"): "change.cost_inputs",
    ("POST", "/api/norms/import"): "change.norm_import",
    ("GET", "/api/reports/costs"): "export.cost_report",
    ("POST", "/api/queue/retry"): "change.retry_dead",
    ("POST", "/api/studies/{study_uid}/forward/retry"): "change.retry_study_forward",
    ("POST", "/api/users"): "change.user_create",
    ("POST", "/api/users/{name}/disable"): "change.user_disable",
    ("POST", "/api/users/{name}/tokens"): "change.user_token",
    ("GET", "/api/audit/export"): "export.audit",
    ("GET", "/api/studies/{study_uid}/viewer"): "view.viewer",
    ("GET", "/ui/orders"): "view.orders",
    ("GET", "/ui/studies"): "view.studies",
    ("GET", "/ui/unmatched"): "view.unmatched",
    ("GET", "/ui/hl7"): "view.hl7_log",
    ("GET", "/ui/billing"): "view.billing",
}


def audit_action(method: str, path: str) -> str | None:
    return AUDITED.get((method, path))
