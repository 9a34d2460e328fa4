"""The scoring engine: everything the service does, without HTTP.

:meth:`ScoringEngine.start` loads and cross-checks the approved model, the profile store, the
pseudonymisation key, the key store and the audit log, or raises one
:class:`~overblik.serving._model.StartupError`. Its methods take validated requests and the
:class:`RequestRecord` that the audit middleware appends to the log after the answer is
ready; they raise :class:`ApiError` for answers other than 200. The BentoML service
(:mod:`overblik.serving._service`) is a thin layer over this class, and the benchmark's
in-process floor calls it directly.

Fast path: the probability is ``calibration_map_(booster_.predict(X))`` on a float array,
which is what ``LightGBMRisk.predict_proba`` computes after its input checks; ``start``
verifies on rows of the profile store that both agree exactly and that the SHAP values add
up to the booster's margin.
"""

from __future__ import annotations

import difflib
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from overblik.features._pseudonym import PseudonymKey, load_key, pseudonymise_one
from overblik.serving._approval_watch import ApprovalWatch
from overblik.serving._auditlog import AuditLog, AuditWriter, DecisionCheck
from overblik.serving._cpr import shown_key
from overblik.serving._database import open_database
from overblik.serving._effects import EFFECT_SCALE, NO_EFFECTS, EffectsScorer, suggest
from overblik.serving._keys import KeyStore
from overblik.serving._model import ServedModel, StartupError, load_served_model
from overblik.serving._payload import payload_problem
from overblik.serving._problems import ApiError, describe
from overblik.serving._profile_store import ProfileStore
from overblik.serving._reasons import Explainer, Language, ReasonText, reasons_for
from overblik.serving._routes import ROUTES, RouteRule
from overblik.serving._schemas import (
    AllocatedCitizen,
    AllocateRequest,
    AllocateResponse,
    AllocationTotals,
    ApprovalInfo,
    BatchRequest,
    BatchResponse,
    BatchResult,
    Citizen,
    Contribution,
    EffectsInfo,
    ExplainRequest,
    ExplainResponse,
    FeedbackRequest,
    FeedbackResponse,
    FieldError,
    MetadataResponse,
    ModelRef,
    Reason,
    RecommendRequest,
    RecommendResponse,
    RiskBand,
    ScoreRequest,
    ScoreResponse,
    VerifyResponse,
)
from overblik.serving._settings import ServingSettings

__all__ = ["NOTICE", "ApiError", "RequestRecord", "ScoringEngine"]

F64 = npt.NDArray[np.float64]
NOTICE: dict[Language, str] = {
    "da": "Scoren er beslutningsstøtte og træffer ikke en afgørelse. Sagsbehandleren vurderer "
          "borgerens situation, træffer afgørelsen og registrerer den med begrundelse "
          "(POST /feedback).",
    "en": "The score supports a caseworker's decision and does not make one. The caseworker "
          "assesses the citizen's situation, decides, and records the decision with its "
          "reason (POST /feedback).",
}
SCALE: dict[Language, str] = {
    "da": "Bidragene er SHAP-værdier på modellens rå skala (log-odds, før kalibrering): "
          "grundværdi + summen af bidragene = den rå score. Sandsynligheden er den kalibrerede "
          "værdi af den rå score; et bidrag viser retning og styrke, ikke procentpoint.",
    "en": "Contributions are SHAP values on the model's raw margin (log-odds, before "
          "calibration): base value + sum of contributions = margin. The probability is the "
          "calibrated value of that margin; a contribution shows direction and strength, "
          "not percentage points.",
}
BAND_TEXT: dict[Language, dict[RiskBand, str]] = {
    "da": {"low": "lav", "medium": "middel", "high": "høj"},
    "en": {"low": "low", "medium": "medium", "high": "high"},
}


def _bad_items(problems: list[FieldError], total: int, noun: str) -> ApiError:
    """One 422 naming every bad item (a caller fixes them all in one go)."""
    bad = len({p.index for p in problems})
    return ApiError(422, f"{bad} of {total} {noun} cannot be used: {describe(problems)}",
                    problems[0].field, problems)


def _unknown(row: F64) -> int:
    """How many of a row's features are unknown (null in a payload)."""
    return int(np.isnan(row).sum())


def _problem(exc: ApiError, index: int, ref: str | None = None) -> FieldError:
    return FieldError(field=exc.field or "body", message=exc.message, index=index, ref=ref)


@dataclass
class RequestRecord:
    """What the audit log will say about one request; handlers fill in the middle part."""

    request_id: str
    endpoint: str
    method: str
    started: float = field(default_factory=time.perf_counter)
    key_id: str | None = None
    role: str | None = None
    kind: str = "request"
    pseudonyms: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    check: DecisionCheck | None = None


_THREAD = threading.local()


def _one_thread() -> None:
    """Limit OpenMP/BLAS to one thread in the calling thread (once per thread).

    One request is one small matrix: thread pools only add waiting (SHAP on one row takes
    ~25x longer with two spinning OpenMP threads on a busy machine). OpenMP limits are per
    thread, hence the check in every scoring call.
    """
    if not getattr(_THREAD, "limited", False):
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
        _THREAD.limited = True


def _reason(r: ReasonText) -> Reason:
    return Reason(feature=r.feature, sentence=r.sentence, value=r.value,
                  contribution=r.contribution, direction=r.direction)


class ScoringEngine:
    """The loaded service state and its operations (use :meth:`start`)."""

    def __init__(self, settings: ServingSettings, model: ServedModel, store: ProfileStore,
                 key: PseudonymKey, keys: KeyStore, audit: AuditLog) -> None:
        self.settings = settings
        self.model = model
        self.store = store
        self.keys = keys
        self.audit = audit
        self.audit_writer = AuditWriter(audit)
        self.watch = ApprovalWatch(model.name, model.version,
                                   tracking_uri=settings.tracking_uri,
                                   seconds=settings.approval_check_seconds,
                                   approval=model.approval,
                                   fairness_passed=model.fairness_passed)
        self._key = key
        self.explainer = Explainer(model.estimator)
        self._booster = model.estimator.booster_
        self._calibrate = model.estimator.calibration_map_
        self._names = model.feature_names
        self._column = {n: j for j, n in enumerate(self._names)}
        self.ref = ModelRef(name=model.name, version=model.version, alias=model.alias)
        self.rules = {r.path: r for r in ROUTES}
        self.effects = (None if model.effects is None
                        else EffectsScorer(model.effects, model.features))

    @classmethod
    def start(cls, settings: ServingSettings) -> ScoringEngine:
        """Load, check and connect everything, or raise :class:`StartupError`."""
        from overblik.features._errors import InputError

        try:
            key = load_key(settings.key_file, demo=settings.demo_key)
        except InputError as exc:
            raise StartupError(f"pseudonymisation key: {exc}") from None
        model = load_served_model(settings.model_name, settings.alias,
                                  tracking_uri=settings.tracking_uri)
        store = ProfileStore.load(settings.profile_path, features=model.feature_names,
                                  key_fingerprint=key.fingerprint)
        try:
            db = open_database(settings.store_url)
            keys = KeyStore(db, cache_seconds=settings.key_cache_seconds)
            audit = AuditLog(db)
        except InputError as exc:
            raise StartupError(str(exc)) from None
        except Exception as exc:  # sqlite3/psycopg errors: unreadable file, no rights, ...
            raise StartupError(f"cannot open the store {db.redacted_url}: "
                               f"{type(exc).__name__}: {exc}") from None
        engine = cls(settings, model, store, key, keys, audit)
        engine.self_check()
        engine.watch.start()
        return engine

    def close(self) -> None:
        """Stop watching the approval; commit the queued audit entries, stop the writer."""
        self.watch.close()
        self.audit_writer.close()

    def self_check(self, rows: int = 50) -> None:
        """Check the fast path against ``predict_proba`` and SHAP against the margin.

        Raises
        ------
        StartupError
            When they disagree (the model files do not belong together).
        """
        _one_thread()
        X = self.store.matrix[:rows]
        if len(X) == 0:
            raise StartupError(f"profile store {self.store.path} is empty: no one to score")
        fast = self._probability(X)
        slow = self.model.estimator.predict_proba(pd.DataFrame(X, columns=self._names))[:, 1]
        if not np.array_equal(fast, slow):
            raise StartupError("the scoring fast path disagrees with predict_proba")
        contrib = self.explainer.contributions(X)
        gap = np.abs(self.explainer.base_value + contrib.sum(axis=1) - self.explainer.margin(X))
        if gap.max() > 1e-6:
            raise StartupError(f"SHAP values do not add up to the margin (off by {gap.max():g})")
        if self.effects is not None:
            off = self.effects.check(X)
            if off > 1e-6:
                raise StartupError(f"the effect models' contributions do not add up to their "
                                   f"effects (off by {off:g}); register the model again")

    # --- the pieces ---------------------------------------------------------------------
    def _probability(self, X: F64) -> F64:
        raw = self._booster.predict(X, num_threads=1)
        return np.asarray(self._calibrate(raw), dtype=np.float64)

    def band(self, probability: float) -> RiskBand:
        """The risk band of a calibrated probability."""
        low, high = self.settings.band_thresholds
        return "low" if probability < low else "medium" if probability < high else "high"

    def _check_identify(self, citizen: Citizen, rule: RouteRule, record: RequestRecord,
                        field: str) -> None:
        if citizen.cpr is not None and record.role is not None and \
                record.role not in rule.identify:
            # Logged under the citizen's pseudonym: their access request (auditlog export
            # --cpr) shows who tried to look them up, not only who did.
            record.pseudonyms.append(pseudonymise_one(citizen.cpr, self._key))
            raise ApiError(403, f"the role {record.role} may send feature payloads to "
                           f"{rule.path} but may not look up citizens by CPR number", field)

    def _lookup(self, cpr: str, record: RequestRecord, field: str) -> F64 | None:
        pseudonym = pseudonymise_one(cpr, self._key)
        record.pseudonyms.append(pseudonym)
        return self.store.row(pseudonym)

    def _payload_row(self, features: dict[str, float | None], field: str) -> F64:
        unknown = [n for n in features if n not in self._column]
        missing = [n for n in self._names if n not in features]
        if unknown:
            # The client's keys are not echoed (a key may hold anything, even a name or a CPR
            # number, and errors go into the audit log); a typo is told by the feature it
            # was meant to be.
            meant = sorted({m for k in unknown
                            for m in difflib.get_close_matches(k, missing, n=1, cutoff=0.8)})
            hint = f" (did you mean {', '.join(meant[:3])}?)" if meant else ""
            raise ApiError(422, f"{len(unknown)} name(s) are not features of "
                           f"{self.model.name}{hint}; GET /metadata lists them", field)
        if missing:
            raise ApiError(422, f"is missing {len(missing)} feature(s), e.g. "
                           f"{', '.join(missing[:3])}; send every feature (null when "
                           "unknown)", field)
        problem = payload_problem(features, self.model.features)
        if problem is not None:
            name, message = problem
            raise ApiError(422, message, field if name is None else f"{field}.{name}")
        return np.array([np.nan if features[n] is None else features[n] for n in self._names],
                        dtype=np.float64)

    def _row(self, citizen: Citizen, rule: RouteRule, record: RequestRecord,
             prefix: str = "") -> tuple[F64, str]:
        self._check_identify(citizen, rule, record, f"{prefix}cpr")
        if citizen.cpr is not None:
            row = self._lookup(citizen.cpr, record, f"{prefix}cpr")
            if row is None:
                raise ApiError(404, self._not_found(), f"{prefix}cpr")
            return row, "profile_store"
        assert citizen.features is not None
        return self._payload_row(citizen.features, f"{prefix}features"), "payload"

    def _need_effects(self) -> EffectsScorer:
        if self.effects is None:
            raise ApiError(409, f"{self.model.name} version {self.model.version} "
                           f"{NO_EFFECTS}")
        return self.effects

    def _not_found(self) -> str:
        return (f"no citizen with this CPR number in the profile store of "
                f"{self.store.meta.as_of} (cohort {self.store.meta.cohort}): not in the "
                "cohort at that date, or not living in the municipality")

    # --- operations ---------------------------------------------------------------------
    def score(self, request: ScoreRequest, lang: Language, record: RequestRecord
              ) -> ScoreResponse:
        """``POST /score``."""
        _one_thread()
        row, source = self._row(request, self.rules["/score"], record)
        X = row.reshape(1, -1)
        p = float(self._probability(X)[0])
        top = self.settings.top_reasons if request.top is None else request.top
        band = self.band(p)
        record.summary = {"probability": round(p, 6), "band": band, "source": source}
        return ScoreResponse(
            request_id=record.request_id, probability=p, risk_band=band,
            risk_band_text=BAND_TEXT[lang][band],
            reasons=[_reason(r) for r in reasons_for(
                self.model.features, row, self.explainer.contributions(X)[0], lang, top)]
            if top > 0 else [],
            model=self.ref, outcome=self.model.config.label.outcome,
            horizon_days=self.model.config.label.horizon_days, source=source,
            as_of=self.store.meta.as_of if source == "profile_store" else None,
            unknown_features=_unknown(row), language=lang, notice=NOTICE[lang])

    def score_batch(self, request: BatchRequest, lang: Language, record: RequestRecord
                    ) -> BatchResponse:
        """``POST /score/batch``: one matrix through the model and SHAP at once."""
        _one_thread()
        rule = self.rules["/score/batch"]
        # Every payload is checked before anyone is looked up: a refused batch names all
        # its bad items and looks up no one.
        payloads: dict[int, F64] = {}
        problems: list[FieldError] = []
        for i, citizen in enumerate(request.items):
            self._check_identify(citizen, rule, record, f"items[{i}].cpr")
            if citizen.features is not None:
                try:
                    payloads[i] = self._payload_row(citizen.features, f"items[{i}].features")
                except ApiError as exc:
                    problems.append(_problem(exc, i))
        if problems:
            raise _bad_items(problems, len(request.items), "items")
        rows: list[F64] = []
        where: list[int] = []
        for i, citizen in enumerate(request.items):
            if citizen.cpr is not None:
                row = self._lookup(citizen.cpr, record, f"items[{i}].cpr")
                if row is None:
                    continue
            else:
                row = payloads[i]
                record.pseudonyms.append("")  # keeps pseudonyms aligned with the items
            rows.append(row)
            where.append(i)
        top = self.settings.top_reasons if request.top is None else request.top
        results = [BatchResult(index=i, request_id=f"{record.request_id}-{i}",
                               status="not_found") for i in range(len(request.items))]
        bands = {"low": 0, "medium": 0, "high": 0}
        # Each item's probability and band, by index (None: not found), so that a decision
        # on <request_id>-<index> joins to what the caseworker saw, as for /score.
        scored: list[tuple[float, str] | None] = [None] * len(request.items)
        if rows:
            X = np.vstack(rows)
            p = self._probability(X)
            contrib = self.explainer.contributions(X) if top > 0 else None
            for k, i in enumerate(where):
                band = self.band(float(p[k]))
                bands[band] += 1
                scored[i] = (round(float(p[k]), 6), band)
                reasons = [] if contrib is None else [
                    _reason(r) for r in reasons_for(self.model.features, X[k], contrib[k],
                                                    lang, top)]
                results[i] = BatchResult(index=i, request_id=f"{record.request_id}-{i}",
                                         status="scored", probability=float(p[k]),
                                         risk_band=band, reasons=reasons,
                                         unknown_features=_unknown(X[k]))
        missed = sorted(set(range(len(request.items))) - set(where))
        # The unscored items by index: /feedback refuses a decision on them.
        record.summary = {"n": len(request.items), "scored": len(where),
                          "not_found": len(missed), "not_found_items": missed, "bands": bands,
                          "items": scored}
        return BatchResponse(
            request_id=record.request_id, model=self.ref, outcome=self.model.config.label.outcome,
            horizon_days=self.model.config.label.horizon_days, as_of=self.store.meta.as_of,
            scored=len(where), not_found=len(request.items) - len(where), results=results,
            language=lang, notice=NOTICE[lang])

    def explain(self, request: ExplainRequest, lang: Language, record: RequestRecord
                ) -> ExplainResponse:
        """``POST /explain``: every feature's contribution, largest first."""
        _one_thread()
        row, source = self._row(request, self.rules["/explain"], record)
        X = row.reshape(1, -1)
        p = float(self._probability(X)[0])
        contrib = self.explainer.contributions(X)[0]
        margin = float(self.explainer.margin(X)[0])
        record.summary = {"probability": round(p, 6), "band": self.band(p), "source": source}
        return ExplainResponse(
            request_id=record.request_id, model=self.ref, probability=p, margin=margin,
            base_value=self.explainer.base_value, scale=SCALE[lang],
            contributions=[Contribution(feature=r.feature, description=r.description,
                                        value=r.value, value_text=r.value_text,
                                        contribution=r.contribution)
                           for r in reasons_for(self.model.features, row, contrib, lang)],
            source=source, as_of=self.store.meta.as_of if source == "profile_store" else None,
            language=lang, notice=NOTICE[lang])

    def recommend(self, request: RecommendRequest, lang: Language, record: RequestRecord
                  ) -> RecommendResponse:
        """``POST /recommend``: every programme's effect for one citizen, largest first."""
        _one_thread()
        rule = self.rules["/recommend"]
        self._check_identify(request, rule, record, "cpr")
        effects = self._need_effects()
        row, source = self._row(request, rule, record)
        top = self.settings.top_reasons if request.top is None else request.top
        programmes = effects.recommend(row, lang, top)
        suggested = suggest(programmes)
        record.summary = {"source": source, "suggested": suggested,
                          "effects": {p.programme: round(p.effect, 6) for p in programmes}}
        return RecommendResponse(
            request_id=record.request_id, model=self.ref, outcome=effects.model.outcome,
            horizon_days=self.model.config.label.horizon_days, programmes=programmes,
            suggested=suggested, scale=EFFECT_SCALE[lang], source=source,
            as_of=self.store.meta.as_of if source == "profile_store" else None,
            unknown_features=_unknown(row),
            language=lang, notice=NOTICE[lang])

    def allocate(self, request: AllocateRequest, lang: Language, record: RequestRecord
                 ) -> AllocateResponse:
        """``POST /allocate``: the best places for a list of citizens (feature payloads)."""
        _one_thread()
        effects = self._need_effects()
        known = set(effects.programmes)
        for name in ("places", "costs"):
            named: dict[str, Any] = getattr(request, name) or {}
            unknown = sorted(set(named) - known)
            if unknown:
                shown = [shown_key(k) for k in unknown]
                verb = "is not a programme" if len(shown) == 1 else "are not programmes"
                raise ApiError(422, f"{', '.join(shown)} {verb} of version "
                               f"{self.model.version}; its programmes are "
                               f"{', '.join(effects.programmes)}", f"{name}.{shown[0]}")
        seen: dict[str, int] = {}
        rows: list[F64] = []
        problems: list[FieldError] = []
        for i, citizen in enumerate(request.citizens):
            if citizen.ref in seen:
                problems.append(FieldError(
                    field=f"citizens[{i}].ref", index=i, ref=citizen.ref,
                    message=f"repeats the ref of citizens[{seen[citizen.ref]}]; give each "
                    "citizen its own ref"))
            seen.setdefault(citizen.ref, i)
            try:
                rows.append(self._payload_row(citizen.features, f"citizens[{i}].features"))
            except ApiError as exc:
                problems.append(_problem(exc, i, citizen.ref))
        if problems:
            raise _bad_items(problems, len(request.citizens), "citizens")
        X = np.vstack(rows) if rows else np.empty((0, len(self._names)))
        planned = effects.allocate(X, places=request.places, costs=request.costs,
                                   budget=request.budget)
        a, est, names = planned.allocation, planned.estimates, effects.programmes
        citizens = []
        for i, citizen in enumerate(request.citizens):
            j = int(a.assignment[i])
            citizens.append(AllocatedCitizen(
                ref=citizen.ref, programme=names[j] if j >= 0 else None,
                expected_benefit=float(est.effect[i, j]) if j >= 0 else None,
                extrapolated=bool(est.extrapolated[i, j]) if j >= 0 else None))
        given = a.assignment >= 0
        extrapolated = int(est.extrapolated[given, a.assignment[given]].sum())
        totals = AllocationTotals(
            citizens=len(citizens), assigned=int(given.sum()),
            expected_benefit=float(a.expected_benefit),
            upper_bound=None if math.isnan(a.upper_bound) else float(a.upper_bound),
            places_used={p: int(a.places_used[j]) for j, p in enumerate(names)},
            places=dict(zip(names, planned.places, strict=True)),
            costs=dict(zip(names, planned.costs, strict=True)), cost=float(a.cost),
            budget=planned.budget, status=a.status, method=a.method)
        notes = [f"{extrapolated} of the places go to citizens whose effect is an "
                 "extrapolation (unlike anyone who got the programme)"] if extrapolated else []
        access = self.model.config.effects.access if self.model.config.effects else None
        if access is not None:
            notes.append(f"the experiment's access constraint (at most {access.max_gap:.0%} "
                         f"between groups of {access.attribute}) is not applied: payloads "
                         "carry no sensitive attributes")
        record.summary = {"n": totals.citizens, "assigned": totals.assigned,
                          "places_used": totals.places_used, "cost": round(totals.cost, 6),
                          "budget": totals.budget,
                          "expected_benefit": round(totals.expected_benefit, 6),
                          "status": totals.status, "method": totals.method,
                          # Who got which place, by the citizens' positions in the request.
                          "assigned_items": {p: np.flatnonzero(a.assignment == j).tolist()
                                             for j, p in enumerate(names)}}
        return AllocateResponse(request_id=record.request_id, model=self.ref,
                                outcome=effects.model.outcome, citizens=citizens,
                                totals=totals, notes=notes, notice=NOTICE[lang])

    def feedback(self, request: FeedbackRequest, record: RequestRecord) -> FeedbackResponse:
        """``POST /feedback``: the decision joins its request in the audit log."""
        base, _, item = request.request_id.partition("-")
        scored = self.audit.find(base)
        if scored is None or scored.entry.status != 200 \
                or scored.entry.endpoint not in ("/score", "/score/batch", "/recommend"):
            raise ApiError(404, "no successful /score, /score/batch or /recommend request has "
                           "this id", "request_id")
        pseudonyms = scored.entry.pseudonyms
        if scored.entry.endpoint == "/score/batch":
            if not item:
                raise ApiError(422, "is a batch: give the id of the item, "
                               "<request_id>-<index>, as in the batch's results", "request_id")
            index = int(item)
            if index >= int(scored.entry.summary.get("n", 0)):
                raise ApiError(404, "the batch has no item with this index", "request_id")
            if index in scored.entry.summary.get("not_found_items", ()):
                raise ApiError(404, "this item of the batch was not scored (not in the profile "
                               "store): there is no score to decide on", "request_id")
            pseudonyms = tuple(p for p in pseudonyms[index:index + 1] if p)
        elif item:
            raise ApiError(404, "no batch item has this id: the request was a single score",
                           "request_id")
        check = DecisionCheck(request.request_id, after=scored.seq, corrects=request.corrects)
        check.verify(self.audit.decisions_on(request.request_id, after=scored.seq))
        record.check = check  # checked again in the append: another decision may come first
        record.kind = "feedback"
        record.pseudonyms = list(pseudonyms)
        record.summary = {"for_request": request.request_id, "decision": request.decision,
                          "action": request.action, "reason": request.reason,
                          "scored_with": f"{scored.entry.model} {scored.entry.model_version}"}
        if request.corrects is not None:
            record.summary["corrects"] = request.corrects
        return FeedbackResponse(request_id=record.request_id, for_request=request.request_id,
                                decision=request.decision, stored=True,
                                corrects=request.corrects)

    def metadata(self) -> MetadataResponse:
        """``GET /metadata``: the model card summary."""
        m, a = self.model, self.watch.approval  # the board's latest decision, as watched
        low, high = self.settings.band_thresholds
        return MetadataResponse(
            model=self.ref, experiment=m.config.name, description=m.config.description.strip(),
            cohort=m.config.cohort, outcome=m.config.label.outcome,
            horizon_days=m.config.label.horizon_days, run_id=m.run_id,
            config_hash=m.config.config_hash(),
            approval=ApprovalInfo(decision=a.decision, by=a.by, at=a.at, reason=a.reason,
                                  overrides_fairness=a.overrides_fairness,
                                  fairness_passed=self.watch.fairness_passed),
            metrics=m.metrics,
            features=[{"name": f.name, "description_da": f.description_da,
                       "description_en": f.description_en, "source": f.source,
                       "purpose": f.purpose, "unit": f.unit, "low": f.low, "high": f.high}
                      for f in m.features],
            profile_store={"as_of": self.store.meta.as_of, "rows": len(self.store),
                           "built_at": self.store.meta.built_at,
                           "model_version": self.store.meta.model_version},
            risk_bands={"low": f"probability < {low}", "medium": f"{low} <= probability < {high}",
                        "high": f"probability >= {high}"},
            explanation=SCALE["en"], notice=dict(NOTICE), demo_data=m.demo_data,
            roles={r.path: sorted(r.roles) if r.roles is not None else ["public"]
                   for r in ROUTES},
            effects=self.effects.info() if self.effects is not None else EffectsInfo(
                available=False, how_to=f"this version {NO_EFFECTS}"))

    def verify(self) -> VerifyResponse:
        """``GET /audit/verify``."""
        v = self.audit.verify()
        return VerifyResponse(intact=v.intact, entries=v.entries, head=v.head, problem=v.problem,
                              kind=v.kind, seq=v.seq)
