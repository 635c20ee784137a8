"""Starting the retraining job in AWS, once a day, from a Chalice scheduled function.

The function in the Lambda only asks AWS to start the job: the single-machine
engine as a Fargate task (``scripts/retrain.py`` in a container, which reads
the event log, trains, evaluates and publishes through the quality gate), or
the Spark engine as an EMR Serverless job run. Its role may start that one
task definition or that one application, and pass their roles, nothing else
(``.chalice/policy-retrain-*.json``).

A scheduled invocation may be retried by EventBridge and Lambda: each start
carries a client token made of the job's name and the day, so a retry the
same day starts nothing new.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.config import RetrainJobConfig
from chalicelib.errors import RetrainJobNotStarted

logger = logging.getLogger(__name__)

#: Names the runs in the AWS console and makes the day's client token.
JOB_NAME = "recommender-retrain"


@dataclass(frozen=True)
class StartedJob:
    """A job AWS accepted: which engine, its id (task ARN or job run id) and the day it is for."""

    engine: str
    job_id: str
    day: str

    def as_dict(self) -> dict[str, str]:
        """Plain JSON values (what the scheduled function returns and logs)."""
        return {"engine": self.engine, "job_id": self.job_id, "day": self.day}


class RetrainJob(Protocol):
    """Something that can start the day's retraining."""

    def start(self, now: datetime) -> StartedJob:
        """Start the retraining of *now*'s day (at most once a day)."""


def _day_token(now: datetime) -> tuple[str, str]:
    day = now.astimezone(timezone.utc).date().isoformat()
    return day, f"{JOB_NAME}-{day}"


class EcsRetrainTask:
    """Runs the retraining container as a Fargate task of one task definition.

    Parameters
    ----------
    ecs_client: a boto3 ECS client.
    config: the cluster, task definition, network and command (``RETRAIN_JOB``).
    """

    def __init__(self, ecs_client: Any, config: RetrainJobConfig) -> None:
        self._ecs = ecs_client
        self._config = config

    def start(self, now: datetime) -> StartedJob:
        """Run one task; its container's command is the configured retrain command."""
        day, token = _day_token(now)
        config = self._config
        network = {"subnets": list(config.subnets), "assignPublicIp": "DISABLED"}
        if config.security_groups:
            network["securityGroups"] = list(config.security_groups)
        try:
            response = self._ecs.run_task(
                cluster=config.cluster, taskDefinition=config.task_definition, launchType="FARGATE", count=1,
                networkConfiguration={"awsvpcConfiguration": network},
                overrides={"containerOverrides": [{"name": config.container, "command": list(config.command)}]},
                startedBy=JOB_NAME, clientToken=token,
            )
        except (BotoCoreError, ClientError) as exc:
            raise RetrainJobNotStarted(f"ECS did not start the retraining task: {exc}") from exc
        if response.get("failures") or not response.get("tasks"):
            raise RetrainJobNotStarted(f"ECS did not start the retraining task: {response.get('failures')}")
        return StartedJob("ecs", response["tasks"][0]["taskArn"], day)


class EmrServerlessRetrainRun:
    """Submits the Spark retraining job to one EMR Serverless application.

    Parameters
    ----------
    emr_client: a boto3 ``emr-serverless`` client.
    config: the application, the job's role, its entry point and arguments (``RETRAIN_JOB``).
    """

    def __init__(self, emr_client: Any, config: RetrainJobConfig) -> None:
        self._emr = emr_client
        self._config = config

    def start(self, now: datetime) -> StartedJob:
        """Start one job run of the entry point."""
        day, token = _day_token(now)
        config = self._config
        submit = {"entryPoint": config.entry_point, "entryPointArguments": list(config.arguments)}
        if config.spark_submit_parameters:
            submit["sparkSubmitParameters"] = config.spark_submit_parameters
        try:
            response = self._emr.start_job_run(
                applicationId=config.application_id, executionRoleArn=config.execution_role_arn,
                jobDriver={"sparkSubmit": submit}, name=f"{JOB_NAME}-{day}", clientToken=token,
            )
        except (BotoCoreError, ClientError) as exc:
            raise RetrainJobNotStarted(f"EMR Serverless did not start the retraining run: {exc}") from exc
        return StartedJob("emr-serverless", response["jobRunId"], day)


def retrain_job(config: RetrainJobConfig, client: Any) -> RetrainJob:
    """The job of *config*, on *client* (ECS or EMR Serverless, as its engine says)."""
    return EcsRetrainTask(client, config) if config.engine == "ecs" else EmrServerlessRetrainRun(client, config)


def start_scheduled_retrain(job: RetrainJob | None, now: datetime | None = None) -> dict[str, Any]:
    """What the daily schedule does: start *job* (None: no retraining configured, nothing to do)."""
    if job is None:
        logger.info("no RETRAIN_JOB configured: the daily retraining does nothing")
        return {"started": False, "reason": "no RETRAIN_JOB configured"}
    started = job.start(now or datetime.now(timezone.utc))
    logger.info("started the daily retraining", extra=started.as_dict())
    return {"started": True, **started.as_dict()}
