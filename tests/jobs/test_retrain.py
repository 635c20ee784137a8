"""The daily retraining: the job it starts in ECS or EMR Serverless (moto in server mode), and the schedule's wiring."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest

from chalicelib.config import RetrainJobConfig
from chalicelib.errors import RetrainJobNotStarted
from chalicelib.jobs.retrain import JOB_NAME, start_scheduled_retrain
from chalicelib.resources import Resources
from tests.support import reset_app_resources, write_stage_config

NOW = datetime(2026, 11, 30, 3, 0, 5, tzinfo=timezone.utc)
COMMAND = ("python", "scripts/retrain.py", "--stage", "prod", "--budget", "12")


def aws(settings, service):
    return boto3.client(service, region_name=settings.region, endpoint_url=settings.s3_endpoint_url)


class EcsStub:
    """ECS's HTTP API, as far as RunTask: records each request and answers what a test sets.

    moto's ECS cannot run a Fargate task in a VPC (it fails building the task's network
    interface), so the task's side of the conversation is this stub's.
    """

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict]] = []
        self.answer: dict = {"tasks": [{"taskArn": "arn:aws:ecs:us-east-1:123456789012:task/retrain/0f1e2d"}],
                             "failures": []}
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                stub.requests.append((self.headers["X-Amz-Target"], json.loads(body)))
                payload = json.dumps(stub.answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def ecs_stub():
    stub = EcsStub()
    yield stub
    stub.close()


@pytest.fixture
def ecs_settings(settings, ecs_stub):
    job = RetrainJobConfig(engine="ecs", cluster="recommender", task_definition="recommender-retrain:3",
                           subnets=("subnet-0a1b2c",), security_groups=("sg-0d1e2f",), container="retrain",
                           command=COMMAND)
    return replace(settings, retrain_job=job, jobs_endpoint_url=ecs_stub.url)


@pytest.fixture
def emr_settings(settings):
    application = aws(settings, "emr-serverless").create_application(
        name="recommender-retrain", releaseLabel="emr-7.5.0", type="SPARK")["applicationId"]
    job = RetrainJobConfig(engine="emr-serverless", application_id=application,
                           execution_role_arn="arn:aws:iam::123456789012:role/recommender-retrain",
                           entry_point="s3://models-bucket/jobs/retrain_spark.py",
                           arguments=("--stage", "prod"), spark_submit_parameters="--conf spark.executor.memory=8g")
    return replace(settings, retrain_job=job, jobs_endpoint_url=settings.s3_endpoint_url)


def sent(job, operation):
    """Record the parameters of every *operation* call the job's client makes (botocore's own event hook)."""
    calls = []
    job._emr.meta.events.register(f"provide-client-params.*.{operation}", lambda params, **kwargs: calls.append(params))
    return calls


def test_the_ecs_task_runs_the_configured_command_once_a_day(ecs_settings, ecs_stub):
    started = start_scheduled_retrain(Resources(ecs_settings).retrain_job, NOW)

    assert started == {"started": True, "engine": "ecs", "day": "2026-11-30",
                       "job_id": "arn:aws:ecs:us-east-1:123456789012:task/retrain/0f1e2d"}
    [(target, request)] = ecs_stub.requests
    assert target == "AmazonEC2ContainerServiceV20141113.RunTask"
    assert request == {
        "cluster": "recommender", "taskDefinition": "recommender-retrain:3", "launchType": "FARGATE", "count": 1,
        "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-0a1b2c"], "securityGroups": ["sg-0d1e2f"],
                                                         "assignPublicIp": "DISABLED"}},
        "overrides": {"containerOverrides": [{"name": "retrain", "command": list(COMMAND)}]},
        "startedBy": JOB_NAME,
        # EventBridge may retry the same day's invocation: the same token, and ECS starts nothing new.
        "clientToken": f"{JOB_NAME}-2026-11-30",
    }


def test_the_emr_serverless_run_submits_the_spark_job(emr_settings):
    job = Resources(emr_settings).retrain_job
    calls = sent(job, "StartJobRun")

    started = start_scheduled_retrain(job, NOW)

    emr = aws(emr_settings, "emr-serverless")
    run = emr.get_job_run(applicationId=emr_settings.retrain_job.application_id, jobRunId=started["job_id"])["jobRun"]
    assert run["name"] == f"{JOB_NAME}-2026-11-30"
    assert run["executionRole"] == "arn:aws:iam::123456789012:role/recommender-retrain"
    assert run["jobDriver"]["sparkSubmit"] == {
        "entryPoint": "s3://models-bucket/jobs/retrain_spark.py", "entryPointArguments": ["--stage", "prod"],
        "sparkSubmitParameters": "--conf spark.executor.memory=8g"}
    assert calls[0]["clientToken"] == f"{JOB_NAME}-2026-11-30"


def test_a_task_ecs_refuses_is_an_error_naming_the_reason(ecs_settings, ecs_stub):
    ecs_stub.answer = {"tasks": [], "failures": [{"arn": "recommender-retrain:3", "reason": "MISSING"}]}
    with pytest.raises(RetrainJobNotStarted, match="ECS did not start the retraining task: .*MISSING"):
        start_scheduled_retrain(Resources(ecs_settings).retrain_job, NOW)


def test_an_emr_application_that_does_not_exist_is_an_error(emr_settings):
    missing = replace(emr_settings.retrain_job, application_id="00fdoesnotexist")
    with pytest.raises(RetrainJobNotStarted, match="EMR Serverless did not start the retraining run"):
        start_scheduled_retrain(Resources(replace(emr_settings, retrain_job=missing)).retrain_job, NOW)


def test_without_a_retrain_job_the_schedule_does_nothing(settings):
    assert Resources(settings).retrain_job is None
    assert start_scheduled_retrain(None, NOW) == {"started": False, "reason": "no RETRAIN_JOB configured"}


def test_the_scheduled_lambda_starts_the_job(emr_settings, tmp_path):
    from chalice.test import Client

    import app

    write_stage_config(tmp_path, "test", emr_settings)
    reset_app_resources()
    try:
        with Client(app.app, stage_name="test", project_dir=str(tmp_path)) as client:
            response = client.lambda_.invoke("daily_retrain", client.events.generate_cw_event(
                source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]))
    finally:
        reset_app_resources()

    assert response.payload["started"] is True and response.payload["engine"] == "emr-serverless"
    runs = aws(emr_settings, "emr-serverless").list_job_runs(applicationId=emr_settings.retrain_job.application_id)
    assert [run["id"] for run in runs["jobRuns"]] == [response.payload["job_id"]]


def test_the_schedule_is_daily_at_three_utc():
    import app

    [schedule] = [source for source in app.app.event_sources if source.name == "daily_retrain"]
    assert schedule.schedule_expression.to_string() == "cron(0 3 * * ? *)"
    assert json.dumps(schedule.schedule_expression.to_string())  # a plain string CloudFormation takes
