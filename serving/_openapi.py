"""The OpenAPI document and Swagger UI page of the scoring service.

BentoML documents the POST APIs from their types; this adds the GET endpoints, the bearer
key scheme, the roles of every route (from the route table) and the error answers, and
serves Swagger UI at ``/docs`` from BentoML's bundled assets (no third-party scripts: the
page is opened inside the municipality's network).
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from pydantic import BaseModel

from overblik.serving._routes import ROUTES, RouteRule
from overblik.serving._schemas import ErrorResponse, MetadataResponse, VerifyResponse

__all__ = ["OPENAPI_VERSION", "SWAGGER_HTML", "openapi_document"]

_REF = "#/components/schemas/{model}"
OPENAPI_VERSION = "3.1.0"
_ERRORS = {
    "401": "Missing, unknown or revoked API key.",
    "403": "The key's role may not use this endpoint.",
    "404": "Unknown citizen (not in the profile store) or unknown request id.",
    "409": "The served version has no effect models (/recommend, /allocate); the score "
           "already has a decision and `corrects` does not name the latest (/feedback).",
    "413": "Body too large.",
    "415": "Body is not JSON.",
    "422": "Malformed or out-of-range request; `fields` names each bad field.",
    "503": "The audit log cannot be written (nothing is answered unaudited), or the ethics "
           "board no longer approves the served version (the model's endpoints).",
}
_CONFLICT_ROUTES = ("/recommend", "/allocate", "/feedback")
_GET_MODELS: dict[str, type[BaseModel]] = {"/metadata": MetadataResponse,
                                           "/audit/verify": VerifyResponse}

SWAGGER_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="UTF-8"><title>overblik scoring service</title>
<link rel="stylesheet" type="text/css" href="/static_content/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/static_content/swagger-ui-bundle.js" charset="UTF-8"></script>
<script>
window.ui = SwaggerUIBundle({url: "/docs.json", dom_id: "#swagger-ui", deepLinking: true});
</script></body></html>
"""


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template=_REF)
    components.update(schema.pop("$defs", {}))
    components[model.__name__] = schema
    return {"$ref": _REF.format(model=model.__name__)}


def _roles_text(rule: RouteRule) -> str:
    if rule.roles is None:
        return "Public (no key)."
    text = f"Roles: {', '.join(sorted(rule.roles))}."
    if rule.identify and rule.identify != rule.roles:
        text += f" CPR numbers: {', '.join(sorted(rule.identify))} only."
    return text


def openapi_document(bentoml_spec: dict[str, Any]) -> dict[str, Any]:
    """BentoML's generated document, completed (see module docs)."""
    doc = dict(bentoml_spec)
    # The schemas are pydantic's JSON Schema 2020-12 (numeric exclusiveMinimum, prefixItems,
    # {"type": "null"}), which is OpenAPI 3.1, not the 3.0.2 BentoML declares: under 3.0 the
    # document is invalid and clients generated from it reject /allocate's budget.
    doc["openapi"] = OPENAPI_VERSION
    components = doc.setdefault("components", {}).setdefault("schemas", {})
    error_ref = _schema(ErrorResponse, components)
    errors = {code: {"description": text, "content": {"application/json": {"schema": error_ref}}}
              for code, text in _ERRORS.items()}
    paths: dict[str, Any] = doc.setdefault("paths", {})
    for rule in ROUTES:
        if rule.path in _GET_MODELS:
            paths[rule.path] = {"get": {
                "summary": rule.summary, "tags": ["Service APIs"],
                "responses": {"200": {"description": "OK", "content": {"application/json": {
                    "schema": _schema(_GET_MODELS[rule.path], components)}}}}}}
        operation = paths.get(rule.path, {}).get(rule.method.lower())
        if operation is None:
            continue
        operation["summary"] = rule.summary
        operation["description"] = f"{operation.get('description') or ''}\n\n{_roles_text(rule)}"
        if rule.public:
            operation["security"] = []
            continue
        responses = {k: v for k, v in operation.get("responses", {}).items()
                     if k not in ("400", "404", "500")}
        wanted = ("401", "403", "404", "422", "503") if rule.method == "GET" and \
            rule.path != "/metadata" else tuple(
                c for c in errors if c != "409" or rule.path in _CONFLICT_ROUTES)
        responses.update({code: errors[code] for code in wanted})
        operation["responses"] = responses
    doc["components"]["securitySchemes"] = {
        "apiKey": {"type": "http", "scheme": "bearer",
                   "description": "An API key from `overblik keys create --role ROLE`."}}
    doc["security"] = [{"apiKey": []}]
    doc["info"] = {
        "title": "overblik scoring service",
        "version": version("overblik"),
        "description": (
            "Risk scores with reasons for caseworker systems, and the estimated effects of "
            "programmes (/recommend) and the allocation of their places (/allocate) when "
            "the served version has effect models. Every request needs "
            "`Authorization: Bearer <key>`; each key has one role (caseworker-system, analyst, "
            "auditor, admin) and each endpoint says which roles may call it. Every request is "
            "written to a hash-chained audit log (who, what, about whom by pseudonym, which "
            "model, the answer's summary). A score supports a caseworker's decision and does "
            "not make one. Reasons are in Danish unless `Accept-Language` prefers English."),
    }
    return doc
