"""UI routes: login/logout, language, and the pages (server-rendered, role-aware navigation).

Pages read in one read-only session (``Database.read_session``: no write lock on SQLite);
the views of patient data among them are audited by the auth gate after the response
(``policy.AUDITED``), in a short write transaction of their own.

Changes from the UI go through the JSON API with the session's CSRF token in the
``X-CSRF-Token`` header (``static/app.js``); the login form uses a double-submit cookie.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.auth import accounts, policy
from gateway.auth.accounts import Principal
from gateway.auth.deps import current_principal, get_read_session, get_service
from gateway.auth.mask import masks_patient_data
from gateway.auth.middleware import SESSION_COOKIE
from gateway.auth.models import Role
from gateway.core import audit
from gateway.core.audit import AuditRecord
from gateway.core.context import ProcessContext
from gateway.core.models import Study
from gateway.views import audit as audit_views
from gateway.views.hl7_messages import message_page
from gateway.views.orders import order_page
from gateway.views.studies import study_page, summaries
from gateway.views.users import user_list
from gateway.web import i18n, pages
from gateway.web.charts import bar_chart

router = APIRouter(tags=["ui"])
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
LOGIN_CSRF_COOKIE = "risgate_login_csrf"

NAV = [
    ("dashboard", "/ui/dashboard"),
    ("orders", "/ui/orders"),
    ("studies", "/ui/studies"),
    ("unmatched", "/ui/unmatched"),
    ("queue", "/ui/queue"),
    ("hl7", "/ui/hl7"),
    ("norms", "/ui/norms"),
    ("billing", "/ui/billing"),
    ("audit", "/ui/audit"),
    ("users", "/ui/users"),
]


def lang_of(request: Request) -> str:
    default = request.app.state.service.settings.ui.default_language
    return i18n.pick(request.cookies.get(i18n.LANG_COOKIE), default)


def nav_for(role: str) -> list[tuple[str, str]]:
    """The pages this role may open: the policy table decides, not the template."""
    return [
        (key, url)
        for key, url in NAV
        if (rule := policy.rule_for("GET", url)) is not None and policy.allows(rule, role)
    ]


def render(request: Request, name: str, **ctx: Any) -> HTMLResponse:
    lang = lang_of(request)
    principal: Principal | None = getattr(request.state, "principal", None)
    context = {
        "lang": lang,
        "t": lambda key: i18n.t(lang, key),
        "vnd": lambda v: i18n.vnd(lang, v),
        "num": lambda v: i18n.number(lang, v),
        "me": principal,
        "nav": nav_for(principal.role) if principal else [],
        "path": request.url.path,
        **ctx,
    }
    response = templates.TemplateResponse(request, name, context)
    response.headers["Cache-Control"] = "no-store"
    return response


def _secure(request: Request) -> bool:
    configured = request.app.state.service.settings.auth.cookie_secure
    return request.url.scheme == "https" if configured is None else configured


def _local_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def home_for(role: str) -> str:
    return "/ui/billing" if role == Role.BILLING else "/ui/dashboard"


@router.get("/")
def home(principal: Annotated[Principal, Depends(current_principal)]) -> RedirectResponse:
    return RedirectResponse(home_for(principal.role), status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = None, failed: int = 0) -> HTMLResponse:
    token = secrets.token_urlsafe(32)
    response = render(
        request, "login.html", csrf=token, next=_local_next(next), failed=bool(failed)
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/login",
    )
    return response


@router.post("/login")
def login(
    request: Request,
    service: Annotated[ProcessContext, Depends(get_service)],
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    csrf_token: Annotated[str, Form(max_length=128)],
    next: Annotated[str, Form(max_length=512)] = "/",
) -> Response:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie, csrf_token):
        raise HTTPException(403, "missing or wrong CSRF token; reload the login page")
    with service.db.write_session() as session:
        user = accounts.check_password(session, username, password)
        created = (
            accounts.create_session(session, user, service.settings.auth.session_hours * 3600)
            if user is not None
            else None
        )
        role = user.role if user else ""
    shown_name = username if accounts.NAME_RE.match(username) else "(invalid name)"
    if created is None:
        audit.record_request(
            request, "login.failure", "user", shown_name, outcome="denied", user=shown_name
        )
        query = urlencode({"next": _local_next(next), "failed": 1})
        return RedirectResponse(f"/login?{query}", status_code=303)
    audit.record_request(request, "login.success", "user", shown_name, user=shown_name)
    target = _local_next(next)
    response = RedirectResponse(home_for(role) if target == "/" else target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        created[0],
        max_age=int(service.settings.auth.session_hours * 3600),
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(
    request: Request,
    service: Annotated[ProcessContext, Depends(get_service)],
    principal: Annotated[Principal, Depends(current_principal)],
) -> JSONResponse:
    value = request.cookies.get(SESSION_COOKIE, "")
    if value:
        with service.db.write_session() as session:
            accounts.end_session(session, value)
    audit.record_request(request, "logout", "user", principal.name)
    response = JSONResponse({"redirect": "/login"})
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/lang/{code}")
def set_language(code: str, request: Request) -> RedirectResponse:
    if code not in i18n.LANGUAGES:
        raise HTTPException(422, "language must be vi or en")
    referer = request.headers.get("referer", "")
    back = "/"
    if referer.startswith(str(request.base_url)):
        back = _local_next("/" + referer[len(str(request.base_url)) :])
    response = RedirectResponse(back, status_code=303)
    response.set_cookie(
        i18n.LANG_COOKIE, code, max_age=365 * 86400, samesite="strict", secure=_secure(request)
    )
    return response


@router.get("/ui/dashboard", response_class=HTMLResponse)
def dashboard_page(
    request: Request, session: Annotated[Session, Depends(get_read_session)]
) -> HTMLResponse:
    data = pages.dashboard(session)
    chart = bar_chart(data.hours, {i18n.t(lang_of(request), "received"): data.per_hour})
    return render(request, "dashboard.html", d=data, chart=chart)


@router.get("/ui/orders", response_class=HTMLResponse)
def orders_page(
    request: Request,
    session: Annotated[Session, Depends(get_read_session)],
    patient_id: Annotated[str | None, Query(max_length=64)] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    page = order_page(session, patient_id=patient_id or None, offset=offset, limit=50)
    return render(request, "orders.html", page=page, patient_id=patient_id or "")


@router.get("/ui/studies", response_class=HTMLResponse)
def studies_page(
    request: Request,
    session: Annotated[Session, Depends(get_read_session)],
    patient_id: Annotated[str | None, Query(max_length=64)] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    page = study_page(session, patient_id=patient_id or None, offset=offset, limit=25)
    pks = dict(
        session.execute(
            select(Study.study_uid, Study.id).where(
                Study.study_uid.in_([s.study_uid for s in page.items])
            )
        ).all()
    )
    states = pages.pipelines(session, [(pks[s.study_uid], s.study_uid) for s in page.items])
    return render(request, "studies.html", page=page, states=states, patient_id=patient_id or "")


@router.get("/ui/unmatched", response_class=HTMLResponse)
def unmatched_page(
    request: Request, session: Annotated[Session, Depends(get_read_session)]
) -> HTMLResponse:
    pks = pages.unmatched_study_pks(session, limit=50)
    items = summaries(session, pks)
    states = pages.pipelines(session, [(pk, s.study_uid) for pk, s in zip(pks, items, strict=True)])
    return render(request, "unmatched.html", items=items, states=states)


@router.get("/ui/queue", response_class=HTMLResponse)
def queue_page(
    request: Request, session: Annotated[Session, Depends(get_read_session)]
) -> HTMLResponse:
    from gateway.operations.queue import status

    return render(request, "queue.html", q=status(session, 200))


@router.get("/ui/hl7", response_class=HTMLResponse)
def hl7_page(
    request: Request,
    session: Annotated[Session, Depends(get_read_session)],
    principal: Annotated[Principal, Depends(current_principal)],
    offset: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    page = message_page(session, mask=masks_patient_data(principal), offset=offset, limit=50)
    return render(request, "hl7.html", page=page)


@router.get("/ui/norms", response_class=HTMLResponse)
def norms_page(
    request: Request, session: Annotated[Session, Depends(get_read_session)]
) -> HTMLResponse:
    from gateway.costing.catalogue_store import load_current

    current = load_current(session)
    return render(request, "norms.html", current=current)


def _day(value: str | None, default: date) -> date:
    if not value:
        return default
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise HTTPException(422, "dates must be YYYY-MM-DD") from None


def _role_may(role: str, method: str, path: str) -> bool:
    rule = policy.rule_for(method, path)
    return rule is not None and policy.allows(rule, role)


@router.get("/ui/billing", response_class=HTMLResponse)
def billing_page(
    request: Request,
    service: Annotated[ProcessContext, Depends(get_service)],
    session: Annotated[Session, Depends(get_read_session)],
    principal: Annotated[Principal, Depends(current_principal)],
    date_from: Annotated[str | None, Query(alias="from", max_length=10)] = None,
    date_to: Annotated[str | None, Query(alias="to", max_length=10)] = None,
    modality: Annotated[str | None, Query(max_length=16)] = None,
    department: Annotated[str | None, Query(max_length=64)] = None,
) -> HTMLResponse:
    from gateway.costing.reports import ReportQuery, illustrative_note, iter_cost_rows
    from pricing_norms.reports import aggregate

    today = date.today()
    start = _day(date_from, today - timedelta(days=30))
    end = _day(date_to, today)
    if end < start:
        raise HTTPException(422, "'to' is before 'from'")
    query = ReportQuery(start, end, (), department or None, (modality or "").upper() or None)
    rows = list(iter_cost_rows(service.db, query))
    labels, series = pages.billing_chart([(r.study_date, r.modality, r.full_cost) for r in rows])
    filters = {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "modality": modality or "",
        "department": department or "",
    }
    qs = urlencode({k: v for k, v in filters.items() if v})
    role = principal.role
    may = {
        "recost": _role_may(role, "POST", "/api/costs/{study_uid}/recost"),
        "link": _role_may(role, "POST", "/api/studies/{study_uid}/link")
        and _role_may(role, "GET", "/ui/unmatched"),
        "norms": _role_may(role, "GET", "/ui/norms"),
        "import": _role_may(role, "POST", "/api/norms/import"),
    }
    return render(
        request,
        "billing.html",
        rows=rows[:500],
        count=len(rows),
        total=sum(r.full_cost for r in rows),
        by_service=aggregate(rows, ("service",)),
        grand=aggregate(rows, ()),
        uncosted=pages.uncosted(session),
        may=may,
        note=illustrative_note(service.db, query),
        chart=bar_chart(labels, series) if rows else None,
        filters=filters,
        qs=qs,
    )


@router.get("/ui/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    session: Annotated[Session, Depends(get_read_session)],
    user: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    query = audit_views.filtered(select(AuditRecord), user=user, action=action)
    page = audit_views.audit_page(session, query, offset=offset, limit=100)
    qs = urlencode({k: v for k, v in {"user": user, "action": action}.items() if v})
    return render(request, "audit.html", page=page, qs=qs, user=user or "", action=action or "")


@router.get("/ui/users", response_class=HTMLResponse)
def users_page(
    request: Request, session: Annotated[Session, Depends(get_read_session)]
) -> HTMLResponse:
    return render(request, "users.html", users=user_list(session), roles=Role.ALL)
