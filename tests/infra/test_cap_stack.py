"""The hard cap's parts in infra/stack.yaml, read from the template: the monthly lift of the
deny-wake policy, its release on delete, least privilege for both, and the safety stop
that reads the worker's Busy metric instead of CPU."""

from __future__ import annotations

import json
from typing import Any

from backend.core.pricing import estimate
from tests.infra.conftest import INFRA, load_template

STACK = load_template(INFRA / "stack.yaml")
RES = STACK["Resources"]


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def test_a_schedule_sends_the_router_the_new_month_event_at_midnight_utc_on_the_1st() -> None:
    from backend.entrypoints.router import NEW_MONTH_EVENT

    schedule = RES["NewMonthSchedule"]
    assert schedule["Type"] == "AWS::Scheduler::Schedule"
    props = schedule["Properties"]
    assert props["ScheduleExpression"] == "cron(0 0 1 * ? *)"
    assert props["ScheduleExpressionTimezone"] == "UTC"
    assert props["Target"]["Arn"] == {"Fn::GetAtt": ["RouterFunction", "Arn"]}
    assert json.loads(props["Target"]["Input"]) == NEW_MONTH_EVENT  # what the handler matches


def test_the_schedules_role_may_only_invoke_the_router() -> None:
    role = RES["NewMonthScheduleRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    (policy,) = role["Policies"]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert _actions(statement) == ["lambda:InvokeFunction"]
    assert statement["Resource"] == {"Fn::GetAtt": ["RouterFunction", "Arn"]}


def test_the_router_may_detach_only_the_deny_wake_policy_and_only_from_itself() -> None:
    lift = RES["RouterLiftDenyWake"]["Properties"]
    assert lift["RoleName"] == {"Ref": "RouterRole"}
    (statement,) = lift["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert _actions(statement) == ["iam:DetachRolePolicy"]
    assert statement["Resource"] == {"Fn::GetAtt": ["RouterRole", "Arn"]}
    assert statement["Condition"] == {"ArnEquals": {"iam:PolicyARN": {"Ref": "DenyWakePolicy"}}}
    # And the router's own policy gained no IAM power at all.
    inline = RES["RouterRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert not [a for s in inline for a in _actions(s) if a.startswith("iam:")]


def test_deleting_the_stack_detaches_the_policy_before_the_role_and_policy_go() -> None:
    release = RES["DenyWakeRelease"]
    assert release["Type"].startswith("Custom::")
    props = release["Properties"]
    assert props["ServiceToken"] == {"Fn::GetAtt": ["RouterFunction", "Arn"]}
    # Referring to both makes CloudFormation delete this first; the permission it uses
    # stays until after it (DependsOn), and the budget action that could attach the
    # policy again is deleted before it.
    assert props["RoleName"] == {"Ref": "RouterRole"} and props["PolicyArn"] == {"Ref": "DenyWakePolicy"}
    assert release["DependsOn"] == "RouterLiftDenyWake"
    assert RES["BudgetDenyWakeAction"]["DependsOn"] == "DenyWakeRelease"
    for name in ("DenyWakeRelease", "RouterLiftDenyWake", "NewMonthSchedule", "NewMonthScheduleRole"):
        assert RES[name]["Condition"] == "WithBudgetAction", name


def test_the_router_is_told_what_the_cap_needs() -> None:
    env = RES["RouterFunction"]["Properties"]["Environment"]["Variables"]
    assert env["WAKE_COMMIT_S"] == {"Ref": "IdleTimeoutS"}
    assert env["ROUTER_ROLE_NAME"] == {"Fn::If": ["WithBudgetAction", {"Ref": "RouterRole"}, {"Ref": "AWS::NoValue"}]}
    text = env["STACK_COST_PARAMETERS"]["Fn::Sub"]
    # Every parameter the estimator prices is passed, so the router's idle month is the
    # wizard's: substitute the defaults and price them.
    defaults = {k: str(v.get("Default", "")) for k, v in STACK["Parameters"].items()}
    filled = text
    for name, value in defaults.items():
        filled = filled.replace("${" + name + "}", value)
    passed = json.loads(filled)
    assert estimate(passed).idle_monthly_usd == estimate({k: defaults[k] for k in passed}).idle_monthly_usd
    assert set(passed) >= {"RedisMode", "EgressMode", "RootVolumeGiB", "CreateDashboard", "EnableBudgetAction"}


def test_the_safety_stop_reads_the_workers_busy_metric_while_the_instance_runs() -> None:
    alarm = RES["IdleStopAlarm"]["Properties"]
    metrics = {m["Id"]: m for m in alarm["Metrics"]}
    assert metrics["busy"]["MetricStat"]["Metric"] == {"Namespace": "TinyLlama", "MetricName": "Busy"}
    running = metrics["running"]["MetricStat"]
    assert running["Metric"]["MetricName"] == "CPUUtilization" and running["Stat"] == "SampleCount"
    assert "FILL(busy, 0)" in metrics["idle"]["Expression"] and "running > 0" in metrics["idle"]["Expression"]
    assert [m["Id"] for m in alarm["Metrics"] if m.get("ReturnData")] == ["idle"]
    # 30 minutes, all of them idle; missing data is a stopped instance.
    assert alarm["EvaluationPeriods"] * metrics["busy"]["MetricStat"]["Period"] == 1800
    assert alarm["DatapointsToAlarm"] == alarm["EvaluationPeriods"]
    assert alarm["TreatMissingData"] == "notBreaching"
    assert {"Fn::Sub": "arn:${AWS::Partition}:automate:${AWS::Region}:ec2:stop"} in alarm["AlarmActions"]
    assert "IdleCpuPercent" not in STACK["Parameters"]
    # The metric exists: the worker's Busy field becomes TinyLlama/Busy.
    (transform,) = RES["BusyMetric"]["Properties"]["MetricTransformations"]
    assert (transform["MetricNamespace"], transform["MetricName"], transform["MetricValue"]) == (
        "TinyLlama", "Busy", "$.Busy")
