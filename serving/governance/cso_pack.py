"""The clinical safety officer's pack for a model version: a DCB0160-style deployment record, a TRIPOD+AI checklist
filled from the run with links to its evidence, and the bias report safe to publish.

Everything is generated from what the product recorded (the model's specification, its training run and model card,
the sealed audit report, the hazard log's safety case); an item only a person can answer is marked `human` and left
for the CSO or the deploying organisation. `build` returns the pack; `write` saves it (JSON and HTML) under
$PHM_HOME/reports/packs/ and logs it to the version's MLflow run."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from evaluation.disclosure import Policy
from evaluation.fairness.narrative import LIKELIHOOD, RISK, RISK_WORDS, SEVERITY
from evaluation.fairness.publish import public_report
from evaluation.fairness.results import AuditResult
from evaluation.model_card import USERS
from models import specs
from phm.core.settings import Settings
from serving.governance import pack_html
from serving.governance.model_audit import latest_report
from serving.governance.safety_case import SafetyCaseError, case

# Hazards of deploying any risk model of the product, the controls the product implements, and the evidence.
# (hazard, cause, effect, controls, evidence, severity index, likelihood before, likelihood after)
DEPLOYMENT_HAZARDS = [
    (
        "Identifiable output reaches someone without a care relationship",
        "A user sees patients outside their practices",
        "Breach of confidentiality",
        "Role- and practice-scoped tokens; person-level output only to coordinators for "
        "their own practices; every protected request access-logged (phm access who-viewed / verify)",
        "serving/auth and the access log; tests/e2e/test_service.py",
        3,
        2,
        0,
    ),
    (
        "A changed configuration scores without review",
        "Band cut-offs, policy, feature definitions or population changed after sign-off",
        "Worklists no longer match what the CSO approved",
        "The daily job and the service refuse "
        "a champion whose configuration differs from the approved one until a change-impact review (phm audit "
        "approve-change)",
        "serving/governance/safety_case.py; phm audit status",
        2,
        2,
        0,
    ),
    (
        "Stale or partial scores shown",
        "The daily job fails or is killed mid-run",
        "Coordinators act on old risks",
        "Atomic snapshot pointer: a crash leaves yesterday's snapshot; the page shows the snapshot date",
        "serving/batch/store.py",
        1,
        2,
        1,
    ),
    (
        "Some communities under-identified",
        "The outcome the model predicts under-records their need (access, coding)",
        "Less proactive care for groups already under-served",
        "Bias report per version (ratios, need at equal score, "
        "performance for everyone); monitoring by group; CSO approval of the exact report",
        "this version's bias report",
        1,
        2,
        1,
    ),
    (
        "The score is used beyond its intended purpose",
        "Used to deny or ration care, or as a diagnosis",
        "Harm to people scored high or low",
        "Intended use stated on every page and in the model card; decision support reviewed by clinicians",
        "model card; Worklist page",
        3,
        1,
        0,
    ),
]


def _rating(severity: int, likelihood: int) -> int:
    return RISK[likelihood][severity]


def _evidence(run_id: str, artifact: str | None, path: str) -> str:
    return f"runs:/{run_id}/{artifact}/{path}" if artifact else f"runs:/{run_id}/{path}"


def deployment_record(
    name: str, version: int, result: AuditResult, safety: dict | None, run_id: str, audit_artifact: str | None
) -> dict:
    """DCB0160-style record: intended purpose, users, hazards with controls and risk before/after, residual risk,
    sign-off. Ratings of the product's standard hazards are proposed; the CSO confirms them (marked `human`)."""
    spec = specs.get(name)
    hazards = []
    for i, (hazard, cause, effect, controls, evidence, sev, before, after) in enumerate(DEPLOYMENT_HAZARDS, 1):
        hazards.append(
            {
                "id": f"D-{i:02d}",
                "hazard": hazard,
                "cause": cause,
                "effect": effect,
                "controls": controls,
                "evidence": evidence,
                "severity": SEVERITY[sev],
                "risk_before": _rating(sev, before),
                "risk_after": _rating(sev, after),
                "source": "product (ratings to be confirmed: human)",
            }
        )
    report = _evidence(run_id, audit_artifact, "bias_report.html")
    for h in result.hazards:
        sev, lik = SEVERITY.index(h.severity), LIKELIHOOD.index(h.likelihood)
        hazards.append(
            {
                "id": h.hazard_id,
                "hazard": h.hazard,
                "cause": h.cause,
                "effect": h.effect,
                "controls": h.existing_controls,
                "evidence": report,
                "severity": h.severity,
                "risk_before": h.risk_rating,
                "risk_after": _rating(sev, max(lik - 1, 0)) if safety and safety.get("approved_by") else h.risk_rating,
                "source": "this version's audit",
            }
        )
    residual = max(h["risk_after"] for h in hazards)
    signed = bool(safety and safety.get("approved_by") and safety.get("ok"))
    return {
        "standard": "DCB0160 (clinical risk management: deployment and use of health IT), as a record to complete",
        "model": name,
        "version": version,
        "title": spec.title,
        "intended_purpose": spec.intended_use,
        "outcome": spec.outcome,
        "users": USERS,
        "not_for": "Denying or rationing care; diagnosis; people outside the ICS's registered population.",
        "configuration": (safety or {}).get("configuration"),
        "configuration_sha256": (safety or {}).get("configuration_sha256"),
        "hazards": hazards,
        "residual_risk": {
            "rating": residual,
            "words": RISK_WORDS[residual],
            "statement": (
                "Acceptable with the controls listed, subject to the CSO's confirmation."
                if residual <= 2
                else "Not acceptable without further controls."
            ),
        },
        "audit": {"report_sha256": result.report_sha256, "flags": len(result.flags), "evidence": report},
        "sign_off": {
            "signed": signed,
            "by": (safety or {}).get("approved_by"),
            "at": (safety or {}).get("approved_at"),
            "hazard_log_entry": (safety or {}).get("approval_seq"),
            "state": "approved and in force" if signed else ((safety or {}).get("reason") or "not signed off"),
        },
        "human": [
            "Deploying organisation, clinical setting and care pathway",
            "Confirmation of the proposed risk ratings",
            "Training of users",
            "Incident reporting route",
        ],
    }


def tripod_checklist(
    name: str, version: int, card: dict | None, result: AuditResult, run_id: str, audit_artifact: str | None
) -> list[dict]:
    """TRIPOD+AI items (Collins et al., BMJ 2024) filled from the run, each with its evidence; `human` where only a
    person can answer."""
    spec = specs.get(name)
    c = card or {}
    perf = c.get("performance_validation", {})
    data = c.get("data", {})
    abs_m = result.absolute.metrics if result.absolute else {}
    card_link = _evidence(run_id, None, "model_card/model_card.html")
    report = _evidence(run_id, audit_artifact, "bias_report.html")

    def run(item: str, topic: str, answer, evidence: str) -> dict:
        return {
            "item": item,
            "topic": topic,
            "answer": answer if answer not in (None, "", []) else "not recorded",
            "evidence": evidence,
            "source": "run" if answer not in (None, "", []) else "missing",
        }

    def human(item: str, topic: str, why: str) -> dict:
        return {"item": item, "topic": topic, "answer": why, "evidence": None, "source": "human"}

    auc = abs_m.get("auroc")
    return [
        run("1", "Title: a prediction model, its outcome and population", f"{spec.title}: {spec.outcome}", card_link),
        run("3a", "Background: healthcare context and rationale", spec.intended_use, card_link),
        run("5a", "Data: sources", data.get("source"), card_link),
        run(
            "5b",
            "Data: dates of the data (training and validation)",
            f"training {data.get('training_index_dates')}, validation {data.get('validation_index_dates')}",
            card_link,
        ),
        run(
            "6a", "Setting and eligibility", json.dumps(c.get("population", {}).get("rules")) if c else None, card_link
        ),
        run("7", "Data preparation and quality", c.get("missing_data"), card_link),
        run(
            "8a",
            "Outcome and how it was assessed",
            json.dumps(c.get("outcome", {}).get("rules")) if c else None,
            card_link,
        ),
        run(
            "9a",
            "Predictors",
            f"{len(c.get('predictors', []))} predictors; feature definition hash {data.get('feature_definition_hash')}"
            if c
            else None,
            card_link,
        ),
        run(
            "10",
            "Sample size",
            f"{result.population['people']:,} people, {result.population['events']:,} outcomes in validation",
            report,
        ),
        run("11", "Missing data", c.get("missing_data"), card_link),
        run("12a", "Analytical methods: model type and tuning", (c.get("algorithm") or {}).get("type"), card_link),
        run(
            "12e",
            "Performance measures",
            (
                f"AUROC {auc.value:.3f} (95% CI {auc.ci[0]:.3f}-{auc.ci[1]:.3f}); "
                if auc and auc.ci[0] is not None
                else ""
            )
            + "; ".join(f"{k} {v.value:.3f}" for k, v in abs_m.items() if k != "auroc" and v.value is not None),
            report,
        ),
        run(
            "12f", "Model updating / recalibration", "Retrained per version; promotion needs a CSO approval", card_link
        ),
        run(
            "12g",
            "Fairness: methods to assess it",
            "Ratios to a reference group by ethnicity, deprivation, sex and "
            "age with simultaneous bootstrap intervals; need at equal score; performance for everyone",
            report,
        ),
        run(
            "14",
            "Open science: code and reproduction",
            f"mlflow run {run_id}; {c.get('model')} version {version}",
            card_link,
        ),
        human("15", "Patient and public involvement", "For the deploying organisation to describe."),
        run(
            "20a",
            "Participants: flow and characteristics",
            json.dumps(c.get("population", {}).get("training")) if c else None,
            card_link,
        ),
        run(
            "23a",
            "Model performance (discrimination, calibration)",
            f"AUROC {perf.get('auroc')}, calibration slope "
            f"{perf.get('calibration_slope')}, intercept {perf.get('calibration_intercept')}"
            if perf
            else None,
            card_link,
        ),
        run(
            "23b",
            "Performance across key subgroups (fairness)",
            f"{len(result.flags)} flag(s) in the bias report {result.report_sha256[:12]}",
            report,
        ),
        run("25", "Interpretation and limitations", "; ".join(c.get("limitations", [])), card_link),
        human("26", "Usability of the model in its intended setting", "For the CSO and clinical leads to assess."),
        human("4", "Objectives: the clinical decision the model informs", "For the deploying organisation to confirm."),
        human("16", "Ethics approval and consent / lawful basis", "For the deploying organisation (IG and DPIA)."),
        human("17", "Funding and conflicts of interest", "For the deploying organisation to declare."),
        human("18", "Protocol and registration", "For the deploying organisation to state."),
    ]


def build(settings: Settings, name: str, version: int) -> dict:
    """The pack of an audited version (raises SafetyCaseError when the version has not been audited)."""
    from training import tracking

    tracking.configure(settings)
    client = MlflowClient()
    mv = client.get_model_version(name, str(version))
    report = latest_report(name, version)
    if report is None:
        raise SafetyCaseError(
            f"{name} version {version} has not been audited: run `phm audit run --model "
            f"{specs.get(name).cli_name} --version {version}` first"
        )
    result = AuditResult.model_validate(report)
    artifact = (mv.tags or {}).get("audit_report_artifact")
    try:
        card = mlflow.artifacts.load_dict(f"runs:/{mv.run_id}/model_card/model_card.json")
    except (MlflowException, OSError):
        card = None
    try:
        safety = case(settings, name, version, tags=mv.tags).summary()
    except (SafetyCaseError, ValueError) as exc:
        safety = {"ok": False, "reason": str(exc)}
    policy = Policy.from_settings(settings)
    return {
        "model": name,
        "version": version,
        "report_sha256": result.report_sha256,
        "deployment_record": deployment_record(name, version, result, safety, mv.run_id, artifact),
        "tripod_ai": tripod_checklist(name, version, card, result, mv.run_id, artifact),
        "public_bias_report": public_report(result, policy),
    }


def write(settings: Settings, name: str, version: int) -> tuple[dict, Path]:
    """Build the pack, save it as JSON and HTML and log it to the version's run."""
    pack = build(settings, name, version)
    out = settings.reports_dir / "packs" / f"{name}_v{version}"
    out.mkdir(parents=True, exist_ok=True)
    for key, render in (
        ("deployment_record", pack_html.deployment_record),
        ("tripod_ai", pack_html.checklist),
        ("public_bias_report", pack_html.public_report),
    ):
        (out / f"{key}.json").write_text(json.dumps(pack[key], indent=1, default=str))
        (out / f"{key}.html").write_text(render(pack[key], name, version))
    run_id = MlflowClient().get_model_version(name, str(version)).run_id
    MlflowClient().log_artifacts(run_id, str(out), f"cso_pack/{pack['report_sha256'][:12]}")
    return pack, out
