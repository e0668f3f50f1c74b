from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.cli.report import render_table, to_json
from rules.offline.report import build_report, campaign_reports, uplift_interval, wilson
from schemas.actions import Channel
from schemas.conversions import Conversion
from schemas.decisions import Decision, Outcome, Reason
from schemas.feedback import Feedback

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def test_newcombe_interval_matches_the_published_examples() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873-890, table II, method 10
    difference, low, high = uplift_interval(56, 70, 48, 80)  # type: ignore[misc]
    assert (round(difference, 4), round(low, 4), round(high, 4)) == (0.2, 0.0524, 0.3339)
    difference, low, high = uplift_interval(9, 10, 3, 10)  # type: ignore[misc]
    assert (round(low, 4), round(high, 4)) == (0.1705, 0.8090)
    assert uplift_interval(1, 10, 0, 0) is None


def test_wilson_never_leaves_zero_to_one() -> None:
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == pytest.approx(1.0)
    assert wilson(0, 0) == (0.0, 1.0)


def _decision(
    n: int, outcome: Outcome, reason: Reason = Reason.RULE_MATCHED, rule: str = "r"
) -> Decision:
    return Decision(
        decision_id=f"d{n}-{outcome.value}",
        customer_id=f"C{n}",
        rule_id=rule,
        rule_version=1,
        ruleset_version="rs-x",
        outcome=outcome,
        reason_code=reason,
        reason="",
        channel=Channel.SMS if outcome is not Outcome.SUPPRESSED else None,
        trigger_event_ids=[f"e{n}"],
        decided_at=NOW,
    )


def _conversion(n: int, group: str) -> Conversion:
    return Conversion(
        conversion_id=f"c{n}",
        customer_id=f"C{n}",
        rule_id="r",
        rule_version=1,
        decision_id=f"d{n}-{'sent' if group == 'treated' else 'held_out'}",
        group=group,  # type: ignore[arg-type]
        event_id=f"g{n}",
        converted_at=NOW,
    )


def test_report_counts_outcomes_once_and_measures_uplift() -> None:
    sent = [_decision(n, Outcome.SENT) for n in range(80)]
    held = [_decision(n, Outcome.HELD_OUT) for n in range(100, 120)]
    deferred = [_decision(n, Outcome.DEFERRED, Reason.QUIET_HOURS) for n in range(5)]
    capped = [_decision(n, Outcome.SUPPRESSED, Reason.FREQUENCY_CAP) for n in range(200, 203)]
    conversions = [_conversion(n, "treated") for n in range(24)] + [
        _conversion(n, "holdout") for n in range(100, 102)
    ]
    (report,) = build_report(
        [*sent, *sent[:10], *held, *deferred, *capped], [*conversions, *conversions[:3]]
    )
    assert (report.fired, report.sent, report.held_out, report.deferred) == (103, 80, 20, 5)
    assert report.sent_by_channel == {"sms": 80}
    assert report.suppressed_by_reason == {"frequency_cap": 3}
    assert (report.treated_rate, report.holdout_rate) == (0.3, 0.1)
    assert report.uplift == pytest.approx(0.2)
    assert report.uplift_ci95 is not None and report.uplift_ci95[0] < 0.2 < report.uplift_ci95[1]
    table = render_table([report])
    assert "30.0%" in table and "10.0%" in table and "frequency_cap 3" in table
    assert '"uplift_ci95"' in to_json([report])


def _sent_with_action(n: int) -> Decision:
    return _decision(n, Outcome.SENT).model_copy(update={"action_id": f"act_{n}"})


def _report(n: int, status: str, number: int = 0, **fields: object) -> Feedback:
    return Feedback.model_validate(
        {
            "feedback_id": f"fb-{n}-{status}-{number}",
            "action_id": f"act_{n}",
            "customer_id": f"C{n}",
            "channel": "sms",
            "status": status,
            "occurred_at": NOW.isoformat(),
            **fields,
        }
    )


def test_the_funnel_follows_each_sent_action_to_its_furthest_status() -> None:
    sent = [_sent_with_action(n) for n in range(10)]
    feedback = [
        *(_report(n, "delivered") for n in range(8)),  # 8 arrive...
        *(_report(n, "opened") for n in range(3)),  # ...3 of them are opened...
        _report(0, "delivered", number=1),  # a late "delivered" after the open: no change
        _report(1, "opened"),  # a re-sent report: counted once
        _report(8, "failed", failure="hard"),  # one bounces
        _report(99, "opened"),  # about an action this report does not hold
    ]
    conversions = [_conversion(n, "treated") for n in range(2)]
    (report,) = build_report(sent, conversions, feedback)
    assert (report.sent, report.delivered, report.engaged, report.failed) == (10, 8, 3, 1)
    assert (report.delivered_rate, report.engaged_rate) == (0.8, 0.3)
    assert "funnel: sent 10 -> delivered 8 (80.0%) -> engaged 3 (30.0%)" in render_table([report])
    assert '"engaged_rate": 0.3' in to_json([report])


def test_a_campaign_sums_its_waves_funnel_and_takes_its_uplift_from_the_first_wave() -> None:
    def wave(n: int, outcome: Outcome, rule: str, number: int) -> Decision:
        decision = _decision(n, outcome, rule=rule)
        return decision.model_copy(update={"campaign": "r", "wave": number})

    decisions = [
        *(wave(n, Outcome.SENT, "r", 1) for n in range(8)),
        *(wave(n, Outcome.HELD_OUT, "r", 1) for n in range(8, 10)),
        *(wave(n, Outcome.SENT, "r-sms", 2) for n in range(30, 33)),
        _decision(20, Outcome.SENT, rule="lonely"),
    ]
    conversions = [_conversion(n, "treated") for n in range(4)] + [_conversion(8, "holdout")]
    reports = build_report(decisions, conversions)
    by_id = {r.rule_id: r for r in reports}
    assert (by_id["r-sms"].campaign, by_id["r-sms"].wave) == ("r", 2)
    assert by_id["lonely"].campaign is None
    [campaign] = campaign_reports(reports)
    assert campaign.waves == ["r", "r-sms"]
    assert (campaign.sent, campaign.entered, campaign.held_out) == (11, 10, 2)
    assert (campaign.treated_conversions, campaign.holdout_conversions) == (4, 1)
    assert campaign.uplift == pytest.approx(4 / 8 - 1 / 2)
    table = render_table(reports)
    assert "campaign r: waves r -> r-sms" in table and "campaign r, wave 2" in table
    assert to_json(reports).count('"campaign": "r"') == 3  # two waves and the campaign
