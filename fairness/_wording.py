"""Danish and English wording of the fairness report and the model card.

The ethics board reads Danish; auditors and the data team often read English. Every string a
reader sees lives here once per language, so a wording change is one edit and the two
languages cannot drift apart silently (a test checks both fill the same placeholders).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "LANGUAGES",
    "Bilingual",
    "Language",
    "attribute_label",
    "format_bound",
    "format_count",
    "format_difference",
    "format_interval",
    "format_limit",
    "format_number",
    "format_value",
    "group_label",
    "metric_label",
    "metric_short",
    "text",
    "value_label",
]

Language = Literal["da", "en"]
LANGUAGES: tuple[Language, ...] = ("da", "en")


@dataclass(frozen=True)
class Bilingual:
    """One text in Danish and English."""

    da: str
    en: str

    def pick(self, language: Language) -> str:
        """The text in ``language``."""
        return self.da if language == "da" else self.en


B = Bilingual

# Rates are shown as percentages, differences of rates as percentage points.
RATE_METRICS = frozenset({"base_rate", "selection_rate", "tpr", "fpr", "fnr", "ppv"})

_METRICS: dict[str, Bilingual] = {
    "base_rate": B("Basisrate (andel med udfald)", "Base rate (share with outcome)"),
    "selection_rate": B("Udvælgelsesrate", "Selection rate"),
    "tpr": B("Sand positiv-rate", "True positive rate"),
    "fpr": B("Falsk positiv-rate", "False positive rate"),
    "fnr": B("Falsk negativ-rate", "False negative rate"),
    "ppv": B("Præcision (PPV)", "Precision (PPV)"),
    "auc": B("AUC", "AUC"),
    "brier": B("Brier-score", "Brier score"),
    "ece": B("Kalibreringsfejl (ECE)", "Calibration error (ECE)"),
    # Names used in model cards and mitigation tables.
    "test_auc": B("AUC (test)", "AUC (test)"),
    "test_ece": B("Kalibreringsfejl, ECE (test)", "Calibration error, ECE (test)"),
    "test_brier": B("Brier-score (test)", "Brier score (test)"),
    "precision_at_k": B("Præcision blandt de k højeste", "Precision among the top k"),
    "recall_at_k": B("Andel fundet blandt de k højeste", "Recall among the top k"),
    "oracle_gap": B("Afstand til den sande risiko (AUC)", "Gap to the true risk (AUC)"),
    "balanced_accuracy": B("Balanceret træfsikkerhed", "Balanced accuracy"),
    "accuracy": B("Træfsikkerhed", "Accuracy"),
    "demographic_parity": B("Demografisk paritet", "Demographic parity"),
    "equalized_odds": B("Lige fejlrater (equalized odds)", "Equalized odds"),
    "true_positive_rate_parity": B("Lige sand positiv-rate", "True positive rate parity"),
    "classes": B("Grupper", "Groups"),
    "option": B("Mulighed", "Option"),
    "method": B("Metode", "Method"),
    "criterion": B("Kriterium", "Criterion"),
    "attribute": B("Egenskab", "Attribute"),
    "group": B("Gruppe", "Group"),
    "n": B("Antal", "Count"),
    "top_features": B("Stærkeste proxyer", "Strongest proxies"),
    "recorded_rate": B("Registreret rate", "Recorded rate"),
    "need_share": B("Andel af dem med behov", "Share of those in need"),
    "benefit_share": B("Andel af dem, der ventes at få gavn",
                       "Share of those expected to benefit"),
    "place_share": B("Andel af pladserne", "Share of the places"),
    "in_need_place_rate": B("Får plads blandt gruppens med behov",
                            "Given a place among the group's in need"),
    "true_rate": B("Sand rate", "True rate"),
    "ratio": B("Forhold", "Ratio"),
}

# Column headers of the wide group tables; the full names are in the overall table.
_SHORT: dict[str, Bilingual] = {
    "base_rate": B("Basisrate", "Base rate"),
    "selection_rate": B("Udvælgelse", "Selection"),
    "tpr": B("Sand pos.", "True pos."),
    "fpr": B("Falsk pos.", "False pos."),
    "fnr": B("Falsk neg.", "False neg."),
    "ppv": B("Præcision", "Precision"),
    "brier": B("Brier", "Brier"),
    "ece": B("ECE", "ECE"),
}

# Codes that appear as values in diagnostic tables (methods and criteria of mitigation).
_VALUES: dict[str, Bilingual] = {
    "as_audited": B("modellen som auditeret (rapportens beslutningsregel)",
                    "the model as audited (the report's decision rule)"),
    "unmitigated": B("uden afbødning (tærsklen med bedste balancerede træfsikkerhed)",
                     "unmitigated (the threshold of best balanced accuracy)"),
    "threshold_optimizer": B("tærskler pr. gruppe (ThresholdOptimizer)",
                             "thresholds per group (ThresholdOptimizer)"),
    "exponentiated_gradient": B("gentrænet med fairness-krav (ExponentiatedGradient)",
                                "retrained under a constraint (ExponentiatedGradient)"),
    # Programmes (features._effects_data), cohorts and outcomes (features._cohorts).
    "family_support": B("intensiv familiestøtte", "intensive family support"),
    "mentor": B("mentorforløb", "mentor programme"),
    "debt_counselling": B("gældsrådgivning", "debt counselling"),
    "job_course": B("jobkursus", "job course"),
    "children_in_families": B("børn under 18 år, der bor i kommunen",
                              "children under 18 living in the municipality"),
    "adults_on_benefit": B("voksne (18-64 år) på en ydelse", "adults (18-64) on a benefit"),
    "child_placement": B("anbringelse uden for hjemmet", "out-of-home placement"),
    "long_term_benefit": B("stadig på ydelse ved horisonten",
                           "still on a benefit at the horizon"),
}

_ATTRIBUTES: dict[str, Bilingual] = {
    "sex": B("Køn", "Sex"),
    "age_band": B("Aldersgruppe", "Age band"),
    "origin": B("Herkomst", "Origin"),
    "district": B("Distrikt", "District"),
    "disability": B("Handicap", "Disability"),
    # Protected attributes as model inputs (features._feature_spec.SENSITIVE_ATTRIBUTES).
    "age_years": B("Alder (år)", "Age (years)"),
    "sex_male": B("Køn (mand)", "Sex (male)"),
    "origin_immigrant": B("Herkomst (indvandrer)", "Origin (immigrant)"),
    "origin_descendant": B("Herkomst (efterkommer)", "Origin (descendant)"),
}

_GROUPS: dict[tuple[str, str], Bilingual] = {
    ("sex", "F"): B("kvinde", "female"),
    ("sex", "M"): B("mand", "male"),
    ("origin", "danish"): B("dansk oprindelse", "Danish origin"),
    ("origin", "immigrant"): B("indvandrere", "immigrants"),
    ("origin", "descendant"): B("efterkommere", "descendants"),
    ("disability", "True"): B("med handicap", "with disability"),
    ("disability", "False"): B("uden handicap", "without disability"),
}

_MISSING = B("(mangler)", "(missing)")

_TEXT: dict[str, Bilingual] = {
    "title": B("Fairness-rapport", "Fairness report"),
    "language_name": B("Dansk", "English"),
    "report_for": B("Model", "Model"),
    "generated": B("Dannet", "Generated"),
    "decision_rule": B("Beslutningsregel", "Decision rule"),
    "rule_threshold": B("score ≥ {threshold}", "score ≥ {threshold}"),
    "rule_top_k": B("de {top_k} højeste scorer udvælges",
                    "the {top_k} highest scores are selected"),
    "population": B("Personer i audit", "Persons audited"),
    "protected_inputs": B("Beskyttede egenskaber som input", "Protected attributes as inputs"),
    "intervals": B("Intervaller", "Intervals"),
    "intervals_value": B(
        "{confidence} % bootstrap-intervaller, {n_boot} gentagelser, seed {seed}",
        "{confidence}% bootstrap intervals, {n_boot} resamples, seed {seed}",
    ),
    "suppression": B("Diskretionering", "Suppression"),
    "suppression_value": B(
        "grupper med færre end {min_count} personer vises ikke",
        "groups with fewer than {min_count} persons are not shown",
    ),
    "demo_banner": B(
        "DEMODATA: syntetiske borgere. Kun til demonstration; må ikke bruges til beslutninger.",
        "DEMO DATA: synthetic citizens. For demonstration only; not for decisions.",
    ),
    "contents": B("Indhold", "Contents"),
    # Verdict
    "verdict": B("Konklusion", "Verdict"),
    "verdict_pass": B("Overholder tærsklerne", "Meets the thresholds"),
    "verdict_warn": B("Overholder tærsklerne, men med usikkerhed",
                      "Meets the thresholds, with uncertainty"),
    "verdict_fail": B("Overholder IKKE tærsklerne", "Does NOT meet the thresholds"),
    "verdict_failed_lead": B(
        "Modellen overholder ikke de fastsatte fairness-tærskler: {failed} af {checked} "
        "undersøgte forskelle mellem grupper er større end grænsen.",
        "The model does not meet the fairness thresholds: {failed} of {checked} differences "
        "between groups that were checked are larger than the limit.",
    ),
    "verdict_passed_lead": B(
        "Modellen overholder de fastsatte fairness-tærskler: ingen af de {checked} undersøgte "
        "forskelle mellem grupper er større end grænsen.",
        "The model meets the fairness thresholds: none of the {checked} differences between "
        "groups that were checked is larger than the limit.",
    ),
    "verdict_uncertain": B(
        "For {count} af forskellene rækker intervallet ud over grænsen, så en forskel større "
        "end grænsen kan ikke udelukkes.",
        "For {count} of the differences the interval reaches beyond the limit, so a difference "
        "larger than the limit cannot be ruled out.",
    ),
    "verdict_policy_lead": B(
        "Modellen kan ikke godkendes efter tærsklerne, fordi auditten ikke følger reglen om "
        "diskretion for små grupper.",
        "The model cannot pass the thresholds because the audit does not follow the rule for "
        "suppressing small groups.",
    ),
    "verdict_policy_breach": B(
        "Auditten undertrykker kun grupper under {audit_min} personer, men reglen kræver "
        "{policy_min}: kør auditten igen med min_count={policy_min}.",
        "The audit only suppresses groups below {audit_min} persons, but the policy requires "
        "{policy_min}: run the audit again with min_count={policy_min}.",
    ),
    "verdict_unchecked_lead": B(
        "Modellen kan ikke godkendes efter tærsklerne, fordi auditten ikke kunne kontrollere "
        "alt, hvad reglen kræver.",
        "The model cannot pass the thresholds because the audit could not check everything "
        "the policy asks for.",
    ),
    "verdict_unchecked": B("Ikke kontrolleret: {items}.", "Not checked: {items}."),
    "unchecked_one_group": B("kun én gruppe ({group}), intet at sammenligne",
                             "only one group ({group}), nothing to compare"),
    "unchecked_all_suppressed": B("alle grupper har færre end {min_count} personer",
                                  "every group has fewer than {min_count} persons"),
    "unchecked_reference_suppressed": B(
        "referencegruppen {group} har færre end {min_count} personer; vælg en større "
        "referencegruppe",
        "the reference group {group} has fewer than {min_count} persons; choose a larger "
        "reference group",
    ),
    "unchecked_others_suppressed": B(
        "alle grupper undtagen referencen har færre end {min_count} personer",
        "every group but the reference has fewer than {min_count} persons",
    ),
    "unchecked_no_estimate": B("ingen forskel mellem grupperne kunne beregnes",
                               "no difference between its groups could be estimated"),
    "unchecked_metric": B("kunne ikke beregnes for nogen gruppe ({needs})",
                          "could not be estimated for any group ({needs})"),
    "unchecked_group": B("kunne ikke beregnes for {group} eller dens reference ({needs})",
                         "could not be estimated for {group} or its reference ({needs})"),
    "needs_ece": B("kalibrering kræver scores, der er sandsynligheder mellem 0 og 1",
                   "calibration needs scores that are probabilities between 0 and 1"),
    "needs_tpr": B("den kræver personer med udfaldet", "it needs persons with the outcome"),
    "needs_fpr": B("den kræver personer uden udfaldet", "it needs persons without the outcome"),
    "needs_selection_rate": B("ingen gruppe blev sammenlignet", "no group was compared"),
    "verdict_largest": B("De største forskelle:", "The largest differences:"),
    "verdict_gap": B(
        "{metric} for {group} er {amount} {direction} end for {reference} ({confidence} "
        "%-interval for forskellen: {low} til {high}; grænse {limit}).",
        "{metric} for {group} is {amount} {direction} than for {reference} ({confidence}% "
        "interval of the difference: {low} to {high}; limit {limit}).",
    ),
    "higher": B("højere", "higher"),
    "lower": B("lavere", "lower"),
    "gap_interval_beyond": B("Hele intervallet ligger uden for grænsen.",
                             "The whole interval lies beyond the limit."),
    "gap_interval_within": B("Hele intervallet ligger inden for grænsen.",
                             "The whole interval lies within the limit."),
    "gap_interval_straddles": B(
        "Intervallet rummer værdier på begge sider af grænsen.",
        "The interval holds values on both sides of the limit.",
    ),
    "gap_no_interval": B("Der er intet interval for denne forskel.",
                         "There is no interval for this difference."),
    "verdict_suppressed": B(
        "{count} grupper har færre end {min_count} personer; de er undertrykt og derfor hverken "
        "vist eller vurderet.",
        "{count} groups have fewer than {min_count} persons; they are suppressed, so they are "
        "neither shown nor assessed.",
    ),
    "verdict_not_assessed": B(
        "Krydsgrupper, der ikke kunne vurderes (intet estimat; de afgør ikke resultatet, "
        "egenskaberne kontrolleres hver for sig): {items}.",
        "Intersections that could not be assessed (no estimate; they do not decide the "
        "verdict, their attributes are checked on their own): {items}.",
    ),
    "verdict_rule": B(
        "Regel: en forskel fejler, når punktestimatet er større end grænsen i absolut værdi "
        "(udvælgelsesrate, sand og falsk positiv-rate ±{rate_limits}; kalibreringsfejl ±{ece}). "
        "Intervallet afgør ikke resultatet, men viser hvor sikkert det er.",
        "Rule: a difference fails when its point estimate is larger than the limit in absolute "
        "value (selection rate, true and false positive rate ±{rate_limits}; calibration error "
        "±{ece}). The interval does not decide the result but shows how certain it is.",
    ),
    "verdict_board": B(
        "Rapporten er grundlag for etikrådets beslutning; den træffer ikke beslutningen.",
        "This report informs the ethics board's decision; it does not make it.",
    ),
    # Overall
    "overall": B("Hele populationen", "Whole population"),
    "overall_intro": B(
        "Nøgletal for alle personer i auditten, med intervaller.",
        "Key figures for everyone in the audit, with intervals.",
    ),
    "metric": B("Mål", "Metric"),
    "group": B("Gruppe", "Group"),
    "value": B("Værdi", "Value"),
    "interval": B("Interval", "Interval"),
    # Groups
    "groups": B("Grupper og krydsgrupper", "Groups and intersections"),
    "groups_intro": B(
        "Hvert tal har sit {confidence} %-interval nedenunder. Referencegruppen er markeret "
        "(ref.). Grupper med færre end {min_count} personer er undertrykt.",
        "Each figure has its {confidence}% interval underneath. The reference group is marked "
        "(ref.). Groups with fewer than {min_count} persons are suppressed.",
    ),
    "groups_rounded": B(
        "Antal er afrundet til nærmeste 10, fordi en gruppe er undertrykt: ellers kunne den "
        "undertrykte gruppes antal regnes ud fra de andre.",
        "Counts are rounded to the nearest 10 because a group is suppressed: otherwise the "
        "suppressed group's count could be worked out from the others.",
    ),
    "suppressed": B("undertrykt / suppressed (n < {min_count})",
                    "undertrykt / suppressed (n < {min_count})"),
    "suppressed_protects": B(
        "undertrykt for at beskytte en mindre krydsgruppe (ellers kunne den regnes ud)",
        "suppressed to protect a smaller intersection (it could be worked out otherwise)"),
    "reference_mark": B("ref.", "ref."),
    "intersection_of": B("{first} × {second}", "{first} × {second}"),
    # Disparities
    "disparities": B("Forskelle mellem grupper", "Differences between groups"),
    "disparities_intro": B(
        "Forskellen mellem hver gruppe og referencegruppen med {confidence} %-interval. Det "
        "grønne bånd er den tilladte forskel; røde punkter er uden for grænsen, orange punkter "
        "er inden for den, men intervallet rækker ud over den (usikkert), og blå punkter er "
        "inden for grænsen med hele intervallet.",
        "The difference between each group and its reference group with its {confidence}% "
        "interval. The green band is the allowed difference; red points lie beyond the limit, "
        "orange points within it but with an interval reaching beyond it (uncertain), and "
        "blue points within it with their whole interval.",
    ),
    "disparity_axis_rate": B("forskel fra reference (procentpoint)",
                             "difference from reference (percentage points)"),
    "disparity_axis": B("forskel fra reference", "difference from reference"),
    "disparity_plot_alt": B("Forskelle mellem grupper med intervaller",
                            "Differences between groups with intervals"),
    "reference": B("Reference", "Reference"),
    "difference": B("Forskel", "Difference"),
    "difference_unit_rate": B("procentpoint", "percentage points"),
    "difference_unit": B("forskel", "difference"),
    "ratio": B("Forhold", "Ratio"),
    "limit": B("Grænse", "Limit"),
    "result": B("Resultat", "Result"),
    "status_fail": B("over grænsen", "beyond the limit"),
    "status_uncertain": B("usikker", "uncertain"),
    "status_ok": B("inden for", "within"),
    "status_unknown": B("intet estimat", "no estimate"),
    "no_disparities": B("Auditten har ingen forskelle for disse mål.",
                        "The audit has no differences for these metrics."),
    # Calibration
    "calibration": B("Kalibrering pr. gruppe", "Calibration by group"),
    "calibration_intro": B(
        "Forudsagt risiko mod observeret andel for hver gruppe. En velkalibreret model ligger "
        "på diagonalen for alle grupper; en gruppe under diagonalen får for høje scorer. "
        "Punkter med færre end {min_count} personer er udeladt.",
        "Predicted risk against the observed share for each group. A well-calibrated model "
        "lies on the diagonal for every group; a group below the diagonal gets scores that are "
        "too high. Points with fewer than {min_count} persons are left out.",
    ),
    "calibration_predicted": B("forudsagt risiko (gennemsnit i interval)",
                               "predicted risk (bin mean)"),
    "calibration_observed": B("observeret andel", "observed share"),
    "calibration_perfect": B("perfekt kalibrering", "perfect calibration"),
    "calibration_plot_alt": B("Kalibreringskurver pr. gruppe", "Calibration curves by group"),
    "no_calibration": B("Auditten har ingen kalibreringskurver.",
                        "The audit has no calibration curves."),
    # Mitigation, proxies, label bias
    "mitigation": B("Afbødning: muligheder og afvejning", "Mitigation: options and trade-off"),
    "mitigation_intro": B(
        "Hver mulighed ændrer modellen eller beslutningsreglen for at mindske forskellene. "
        "Tabellen viser, hvad det koster i træfsikkerhed, og hvad det giver i lighed. "
        "Mulighederne vælger efter bedste balancerede træfsikkerhed og udvælger derfor en "
        "anden andel end rapportens beslutningsregel; sammenlign dem med rækken uden "
        "afbødning, og rapportens øvrige tal med rækken for modellen som auditeret.",
        "Each option changes the model or the decision rule to reduce the differences. The "
        "table shows what it costs in accuracy and what it gains in equality. The options "
        "decide for the best balanced accuracy, so they select another share than the "
        "report's decision rule: compare them with the unmitigated row, and the rest of the "
        "report with the row of the model as audited.",
    ),
    "mitigation_scope": B(
        "Sammenlignet for {attribute} på {n_test} testpersoner ({n_train} til træning).",
        "Compared for {attribute} on {n_test} test persons ({n_train} for training).",
    ),
    "mitigation_plot_alt": B("Afvejning mellem træfsikkerhed og forskelle",
                             "Trade-off between accuracy and differences"),
    "proxies": B("Stedfortrædende variabler (proxyer) for beskyttede egenskaber",
                 "Proxies for protected attributes"),
    "proxies_intro": B(
        "Hvor godt kan modellens input forudsige hver beskyttet egenskab? AUC 0,5 betyder "
        "ingen information; jo højere, jo mere kan input stå i stedet for egenskaben, også "
        "selvom egenskaben ikke selv er input.",
        "How well can the model's inputs predict each protected attribute? AUC 0.5 means no "
        "information; the higher, the more the inputs can stand in for the attribute, even "
        "when the attribute itself is not an input.",
    ),
    "label_bias": B("Skævhed i det registrerede udfald", "Bias in the recorded outcome"),
    "label_bias_intro": B(
        "Et registreret udfald (fx en underretning) afspejler, hvem der bliver set, lige så "
        "meget som hvem der er i risiko. Tabellen sammenligner den registrerede rate med den "
        "sande rate; et forhold over 1 betyder, at gruppen ser mere udsat ud, end den er.",
        "A recorded outcome (such as a notification) reflects who is watched as much as who is "
        "at risk. The table compares the recorded rate with the true rate; a ratio above 1 "
        "means the group looks more at risk than it is.",
    ),
    "places": B("Hvem får pladserne, og hvem har behov", "Who gets the places, and who needs them"),
    "places_intro": B(
        "Pladserne i tilbuddene fordeles efter den forventede gavn, ikke efter risiko. For "
        "hver gruppe: dens andel af borgerne med behov (det dårlige udfald indtraf), af dem "
        "der ventes at få gavn af et tilbud, og af pladserne, og hvor stor en del af gruppens "
        "borgere med behov der får en plads. En gruppe, hvis andel af pladserne ligger langt "
        "under dens andel af behovet, bliver holdt ude.",
        "Places in the programmes are allocated by expected benefit, not by risk. For each "
        "group: its share of the citizens in need (the bad outcome happened), of those "
        "expected to benefit from a programme, and of the places, and how many of the group's "
        "citizens in need get a place. A group whose share of the places lies far below its "
        "share of the need is being left out.",
    ),
    "places_scope": B(
        "Tilbud: {programmes}; {places} pladser fordelt blandt testpersonerne uden tilbud på "
        "testdatoen, {in_need} af dem med behov. En andel af færre end {min_count} personer "
        "vises ikke (–).",
        "Programmes: {programmes}; {places} places allocated among the test persons without a "
        "programme at the test date, {in_need} of them in need. A share of fewer than "
        "{min_count} persons is not shown (–).",
    ),
    # Card and method
    "card": B("Modelkort", "Model card"),
    "method": B("Metode", "Method"),
    "method_text": B(
        "Mål pr. gruppe er beregnet på {data}. Intervallerne er percentil-bootstrap med "
        "{n_boot} gentagelser ({confidence} %); for andele (fx TPR) mindst Wilsons interval "
        "og for deres forskelle mindst Newcombes, så en andel af få tilfælde aldrig ser sikker "
        "ud (2 ud af 2 giver 34–100 %, ikke 100–100 %). Forskelle er gruppe minus reference; "
        "forhold er "
        "gruppe divideret med reference. Krydsgrupper kombinerer to egenskaber. Grupper med "
        "færre end {min_count} personer vises aldrig med tal.",
        "Metrics by group are computed on {data}. The intervals are percentile bootstrap "
        "with {n_boot} resamples ({confidence}%); for rates (e.g. TPR) at least the Wilson "
        "interval, and for their differences at least Newcombe's, so a rate of few cases never "
        "looks certain (2 of 2 gives 34-100%, not 100-100%). Differences are group minus "
        "reference; ratios "
        "are group divided by reference. Intersections combine two attributes. Groups with "
        "fewer than {min_count} persons are never shown with numbers.",
    ),
    "figure_missing": B("(ingen figur)", "(no figure)"),
    "test_data": B("testdata (modellens testrækker på testdatoen)",
                   "test data (the model's test rows on the test date)"),
    "yes": B("ja", "yes"),
    "no": B("nej", "no"),
    "unknown": B("ukendt", "unknown"),
}


def text(key: str, language: Language, **values: object) -> str:
    """The wording ``key`` in ``language`` with ``{placeholders}`` filled from ``values``."""
    try:
        template = _TEXT[key].pick(language)
    except KeyError:
        raise KeyError(f"no wording for {key!r}: add it to fairness/_wording.py") from None
    return template.format(**values) if values else template


def metric_label(metric: str, language: Language) -> str:
    """A metric's readable name; unknown names are shown as they are."""
    found = _METRICS.get(metric)
    if found:
        return found.pick(language)
    for suffix in ("difference", "ratio"):
        base = metric.removesuffix(f"_{suffix}")
        if base != metric and base in _METRICS:
            return f"{_METRICS[base].pick(language)}: {_TEXT[suffix].pick(language).lower()}"
    return metric


def value_label(value: str, language: Language) -> str:
    """A code shown as a table value (a method or a criterion), readable; else as it is."""
    found = _VALUES.get(value) or _METRICS.get(value)
    return found.pick(language) if found else value


def metric_short(metric: str, language: Language) -> str:
    """A short metric name for a column header."""
    found = _SHORT.get(metric)
    return found.pick(language) if found else metric_label(metric, language)


def attribute_label(attribute: str, language: Language) -> str:
    """A protected attribute's readable name; ``a&b`` reads ``A × B``."""
    parts = [
        (_ATTRIBUTES[p].pick(language) if p in _ATTRIBUTES else p) for p in attribute.split("&")
    ]
    return " × ".join(parts)


def group_label(attribute: str, group: str, language: Language) -> str:
    """A group's readable name; intersection groups ``a&b`` read ``a · b``."""
    attributes = attribute.split("&")
    values = group.split("&")
    if len(values) != len(attributes):  # a group name that itself holds "&": keep it whole
        attributes, values = [attribute], [group]
    parts = []
    for attr, value in zip(attributes, values, strict=True):
        found = _MISSING if value == "(missing)" else _GROUPS.get((attr, value))
        parts.append(found.pick(language) if found else value)
    return " · ".join(parts)


def _minus(s: str) -> str:
    # A typographic minus: "-0.1" and "−0.1" read the same, but "−" never breaks a line.
    return s.replace("-", "−")


def format_number(value: float, language: Language, decimals: int = 3, *,
                  sign: bool = False) -> str:
    """``value`` with a decimal comma in Danish, a point in English; '–' when not a number."""
    if value is None or not math.isfinite(value):
        return "–"
    if round(value, decimals) == 0:
        value = 0.0  # no "−0.000"
    s = f"{value:+,.{decimals}f}" if sign else f"{value:,.{decimals}f}"
    # Danish 1 234,5 (no-break space, decimal comma); English 1 234.5 (thin space).
    da = s.replace(",", "\u00a0").replace(".", ",")
    return _minus(da if language == "da" else s.replace(",", "\u2009"))


def format_value(metric: str, value: float, language: Language) -> str:
    """A metric value: rates as percentages, the others with three decimals."""
    if metric in RATE_METRICS:
        if value is None or not math.isfinite(value):
            return "–"
        pct = format_number(100 * value, language, 1)
        return f"{pct}\u00a0%" if language == "da" else f"{pct}%"
    return format_number(value, language, 3)


def format_difference(metric: str, value: float, language: Language) -> str:
    """A difference: percentage points for rates (with sign), else a signed decimal."""
    if metric in RATE_METRICS:
        if value is None or not math.isfinite(value):
            return "–"
        unit = "procentpoint" if language == "da" else "percentage points"
        return f"{format_number(100 * value, language, 1, sign=True)}\u00a0{unit}"
    return format_number(value, language, 3, sign=True)


def format_limit(metric: str, limit: float, language: Language) -> str:
    """An allowed absolute difference, e.g. ``±10.0 percentage points``."""
    return "±" + format_difference(metric, limit, language).lstrip("+")


def format_bound(metric: str, value: float, language: Language, *,
                 difference: bool = False) -> str:
    """A bare number in ``metric``'s unit (percent or percentage points for rates)."""
    if metric in RATE_METRICS:
        return format_number(100 * value, language, 1, sign=difference)
    return format_number(value, language, 2 if metric == "ratio" else 3, sign=difference)


def format_interval(low: float, high: float, language: Language, *, metric: str = "",
                    difference: bool = False, compact: bool = False) -> str:
    """``low to high`` in the unit of ``metric`` (percentage points for rate differences).

    ``compact`` gives ``[low; high]`` (Danish, where the comma is the decimal mark) or
    ``[low, high]`` (English), for table cells.
    """
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return "–"
    lo = format_bound(metric, low, language, difference=difference)
    hi = format_bound(metric, high, language, difference=difference)
    if compact:
        return f"[{lo}; {hi}]" if language == "da" else f"[{lo}, {hi}]"
    return f"{lo} til {hi}" if language == "da" else f"{lo} to {hi}"


def format_count(n: int, language: Language, *, rounded: bool = False) -> str:
    """A count; ``rounded`` to the nearest 10 (shown with ≈) to protect a suppressed cell."""
    if rounded:
        return "≈" + format_number(float(round(n, -1)), language, 0)
    return format_number(float(n), language, 0)

