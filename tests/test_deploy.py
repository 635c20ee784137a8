"""Deploying to AWS: `chalice package` with our template builds a bundle and a stack that hold.

The bundle must fit Lambda (numpy in, training libraries out, 50 MB zipped,
250 MB unzipped); the stack must create the bucket and table as README says;
the function's role may do only what the code does, on those resources only.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from chalicelib.config import load_settings, stage_environment
from chalicelib.eventlog.item import EventRecord

PROJECT_DIR = Path(__file__).resolve().parents[1]
CHALICE_DIR = PROJECT_DIR / ".chalice"
MB = 1024 * 1024
#: Every AWS action the serving code calls, and why (the role may grant nothing else).
ACTIONS_THE_CODE_USES = {
    "logs:CreateLogStream", "logs:PutLogEvents",          # powertools' log lines and metrics
    "s3:GetObject",                                        # the pointer, manifests and model files
    "s3:ListBucket",                                       # a missing version reads as 404, not 403
    "dynamodb:DescribeTable",                              # pynamodb reads the table's key schema
    "dynamodb:PutItem",                                    # the erasure marker
    "dynamodb:BatchWriteItem", "dynamodb:BatchGetItem",    # events, erasure, the duplicate check
    "dynamodb:Query",                                      # real-time history and erasure
    "dynamodb:GetItem",                                    # a catalog item
    "secretsmanager:GetSecretValue",                       # the user-token signing secret
}
# `chalice package` caches its bundle in the project's .chalice/deployments: two workers packaging at
# once on a clean clone wrote one zip over the other. One worker runs this module (--dist loadgroup).
pytestmark = pytest.mark.xdist_group("chalice-package")

#: What the bundle must never carry: the training side and the tools.
TRAINING_ONLY = ("scipy", "implicit", "threadpoolctl", "tqdm", "matplotlib", "moto", "pytest", "openapi_core")


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    """``make package STAGE=prod`` as README runs it: ``chalice package`` with our template, then the bytecode."""
    out = tmp_path_factory.mktemp("package")
    chalice = Path(sys.executable).with_name("chalice")
    environment = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    subprocess.run([str(chalice), "package", "--stage", "prod", "--merge-template", ".chalice/template.json",
                    str(out)], cwd=PROJECT_DIR, env=environment, check=True, capture_output=True, timeout=600)
    subprocess.run([sys.executable, str(PROJECT_DIR / "scripts" / "compile_bundle.py"), str(out / "deployment.zip")],
                   cwd=PROJECT_DIR, check=True, capture_output=True, timeout=300)
    return out


@pytest.fixture(scope="module")
def template(package) -> dict:
    return json.loads((package / "sam.json").read_text())


def test_the_bundle_fits_lambda_and_carries_the_serving_path_only(package):
    bundle = package / "deployment.zip"
    with zipfile.ZipFile(bundle) as archive:
        entries = archive.infolist()
    names = {entry.filename for entry in entries}
    top_level = {name.split("/")[0] for name in names}

    assert bundle.stat().st_size <= 50 * MB
    assert sum(entry.file_size for entry in entries) <= 250 * MB
    assert {"numpy", "pynamodb", "jwt", "aws_lambda_powertools", "app.py", "chalicelib"} <= top_level
    assert not top_level & set(TRAINING_ONLY)
    # The contract and its page travel with the code.
    assert "chalicelib/api/openapi.json" in names
    assert "chalicelib/api/docs_page/swagger-ui/swagger-ui-bundle.js" in names
    # A cold start finds the bytecode of what it imports (Lambda cannot write it), and only that is added.
    tag = sys.implementation.cache_tag
    assert {f"__pycache__/app.{tag}.pyc", f"chalicelib/api/__pycache__/routing.{tag}.pyc", f"pynamodb/__pycache__/models.{tag}.pyc",
            f"numpy/__pycache__/__init__.{tag}.pyc"} <= names
    assert not any(name.startswith("numpy/") and "/tests/" in name and name.endswith(".pyc") for name in names)


def test_numpy_is_a_version_chalice_can_bundle_for_lambda(package):
    with zipfile.ZipFile(package / "deployment.zip") as archive:
        versions = {name.split("-")[1] for name in archive.namelist()
                    if re.match(r"numpy-[\d.]+\.dist-info/METADATA$", name)}
    assert len(versions) == 1
    major, minor = map(int, versions.pop().replace(".dist-info/METADATA", "").split(".")[:2])
    assert (major, minor) < (2, 3)


#: cfn-lint resolves RetrainPassRoleArns to its empty default and finds no ARN there; the statement that
#: uses it exists only under the condition ScheduledRetrain, that is when the job's parameters are given.
EXPECTED_LINT = {("W1030", ("Parameters", "RetrainPassRoleArns", "Default"))}


def test_cloudformation_accepts_the_template(package):
    """cfn-lint checks every resource's properties against CloudFormation's own schemas."""
    result = subprocess.run([str(Path(sys.executable).with_name("cfn-lint")), "--format", "json",
                             str(package / "sam.json")], capture_output=True, text=True, timeout=300)
    findings = {(match["Rule"]["Id"], tuple(match["Location"]["Path"])) for match in json.loads(result.stdout or "[]")}
    assert findings <= EXPECTED_LINT, result.stdout + result.stderr


def test_the_model_bucket_is_versioned_encrypted_private_and_kept(template):
    bucket = template["Resources"]["ModelBucket"]
    properties = bucket["Properties"]

    assert bucket["Type"] == "AWS::S3::Bucket"
    assert bucket["DeletionPolicy"] == bucket["UpdateReplacePolicy"] == "Retain"
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    encryption = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True}


def test_the_event_table_is_on_demand_recoverable_and_expires_events(template):
    table = template["Resources"]["EventsTable"]
    properties = table["Properties"]

    assert table["Type"] == "AWS::DynamoDB::Table"
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


def test_the_event_table_streams_new_images_to_the_insight_counters(template):
    assert template["Resources"]["EventsTable"]["Properties"]["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}


def test_the_counters_table_is_on_demand_expires_counters_and_is_keyed_as_the_code(template):
    from chalicelib.insights.counters import CounterRecord

    table = template["Resources"]["InsightsTable"]
    properties = table["Properties"]
    schema = CounterRecord._get_schema()

    assert table["Type"] == "AWS::DynamoDB::Table" and properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["TimeToLiveSpecification"] == {"AttributeName": CounterRecord.expires_at.attr_name,
                                                     "Enabled": True}
    assert properties["KeySchema"] == [{"AttributeName": k["AttributeName"], "KeyType": k["KeyType"]}
                                       for k in schema["key_schema"]]
    assert properties["AttributeDefinitions"] == schema["attribute_definitions"]


def test_the_catalog_table_is_on_demand_recoverable_and_keyed_as_the_code(template):
    from chalicelib.catalog.item import CatalogRecord

    table = template["Resources"]["CatalogTable"]
    properties = table["Properties"]
    schema = CatalogRecord._get_schema()

    assert table["DeletionPolicy"] == "Retain" and properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["KeySchema"] == [{"AttributeName": k["AttributeName"], "KeyType": k["KeyType"]}
                                       for k in schema["key_schema"]]
    assert properties["AttributeDefinitions"] == schema["attribute_definitions"]


def test_the_event_table_has_the_keys_and_index_of_the_code(template):
    """The table the stack creates is the one pynamodb's model describes (as provision.py creates locally)."""
    properties = template["Resources"]["EventsTable"]["Properties"]
    schema = EventRecord._get_schema()

    def keys(key_schema):  # the hash key first, then the range key
        return [entry["AttributeName"] for entry in sorted(key_schema, key=lambda entry: entry["KeyType"])]

    def attributes(definitions):
        return sorted((entry["AttributeName"], entry["AttributeType"]) for entry in definitions)

    assert attributes(properties["AttributeDefinitions"]) == attributes(schema["attribute_definitions"])
    assert keys(properties["KeySchema"]) == keys(schema["key_schema"]) == ["user_id", "record_key"]
    assert [(index["IndexName"], keys(index["KeySchema"]), index["Projection"])
            for index in properties["LocalSecondaryIndexes"]] == [
        (index["index_name"], keys(index["key_schema"]), index["projection"])
        for index in schema["local_secondary_indexes"]]
    assert not schema["global_secondary_indexes"] and "GlobalSecondaryIndexes" not in properties


def test_the_function_is_given_the_stacks_resources_and_says_where_they_are(template):
    function = template["Resources"]["APIHandler"]["Properties"]
    variables = function["Environment"]["Variables"]
    config = json.loads((CHALICE_DIR / "config.json").read_text())

    assert variables["MODEL_BUCKET"] == {"Ref": "ModelBucket"}
    assert variables["EVENTS_TABLE"] == {"Ref": "EventsTable"}
    assert variables["CATALOG_TABLE"] == {"Ref": "CatalogTable"}
    assert variables["INSIGHTS_TABLE"] == {"Ref": "InsightsTable"}
    assert "${UserTokenSigningSecret}" in variables["USER_TOKEN_SECRETS"]["Fn::Sub"]
    assert (function["MemorySize"], function["Timeout"]) == (config["lambda_memory_size"], config["lambda_timeout"])
    assert {"ModelBucket", "EventsTable", "CatalogTable", "InsightsTable", "UserTokenSecrets",
            "EndpointURL"} <= set(template["Outputs"])


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_each_deployed_stage_validates_with_what_the_stack_gives_it(template, stage):
    """The stage's own variables plus the template's, with CloudFormation's references resolved."""
    given = {name: _resolve(value) for name, value in
             template["Resources"]["APIHandler"]["Properties"]["Environment"]["Variables"].items()}
    settings = load_settings({**stage_environment(stage), **given})

    assert settings.model_bucket == "resolved-ModelBucket"
    assert settings.events_table == "resolved-EventsTable"
    assert settings.catalog_table_name == "resolved-CatalogTable"
    assert settings.insights_table_name == "resolved-InsightsTable"
    # The stream consumer keeps the counters: POST /events does not (README, Insights).
    assert settings.insights_counters == "stream"
    assert settings.user_token_secrets[0].secret_arn.startswith("arn:aws:secretsmanager:")
    assert settings.s3_endpoint_url is None and settings.dynamodb_endpoint_url is None


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_role_may_do_only_what_the_code_does_on_the_stacks_resources_only(template, stage):
    config = json.loads((CHALICE_DIR / "config.json").read_text())
    stage_config = config["stages"][stage]
    assert stage_config["autogen_policy"] is False
    policy = json.loads((CHALICE_DIR / stage_config["iam_policy_file"]).read_text())
    statements = policy["Statement"]
    prefix = stage_environment(stage)["MODEL_PREFIX"]

    actions = {action for statement in statements for action in statement["Action"]}
    assert actions == ACTIONS_THE_CODE_USES
    assert all(statement["Effect"] == "Allow" and "NotAction" not in statement and "NotResource" not in statement
               for statement in statements)
    for statement in statements:
        for resource in statement["Resource"]:
            arn = _resolve(resource)
            # Every resource is one the stack creates; the one wildcard is the model versions' keys,
            # whose names retraining makes.
            assert arn.startswith("resolved-arn-of-") or arn.startswith("arn:aws:secretsmanager:"), resource
            assert "*" not in arn or arn == f"resolved-arn-of-ModelBucket/{prefix}/*", resource
            referenced = re.findall(r"resolved-(?:arn-of-)?(\w+)", arn)
            assert referenced and all(name in template["Resources"] for name in referenced), resource


def test_each_packaged_role_is_its_functions_policy(template):
    config = json.loads((CHALICE_DIR / "config.json").read_text())["stages"]["prod"]
    expected = {"APIHandler": config["iam_policy_file"],
                "DailyRetrain": config["lambda_functions"]["daily_retrain"]["iam_policy_file"],
                "InsightCounters": config["lambda_functions"]["insight_counters"]["iam_policy_file"]}
    roles = {name for name, resource in template["Resources"].items() if resource["Type"] == "AWS::IAM::Role"}

    # The API's, the daily retraining's and the stream consumer's: none shares anything with another.
    assert len(roles) == 3
    for function, policy_file in expected.items():
        role_name = template["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
        role = template["Resources"][role_name]["Properties"]
        assert [p["PolicyDocument"] for p in role["Policies"]] == [json.loads((CHALICE_DIR / policy_file).read_text())]
        assert "ManagedPolicyArns" not in role
    assert {template["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0] for function in expected} == roles


#: What the daily retraining function calls, and why: nothing of the API's.
ACTIONS_OF_THE_DAILY_RETRAIN = {
    "logs:CreateLogStream", "logs:PutLogEvents",  # its log lines
    "ecs:RunTask", "emr-serverless:StartJobRun",  # the one job (chalicelib/jobs/retrain.py)
    "iam:PassRole",                               # the roles that job runs as
}


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_daily_retrain_may_start_the_one_job_and_nothing_else(template, stage):
    config = json.loads((CHALICE_DIR / "config.json").read_text())["stages"][stage]
    policy = json.loads((CHALICE_DIR / config["lambda_functions"]["daily_retrain"]["iam_policy_file"]).read_text())
    [logs, *job] = policy["Statement"]

    # Without a job to start (RetrainJobResourceArn left empty) the role may only write its own logs.
    assert logs["Resource"] == [{"Fn::GetAtt": ["DailyRetrainLogGroup", "Arn"]}]
    assert all(set(entry) == {"Fn::If"} and entry["Fn::If"][0] == "ScheduledRetrain"
               and entry["Fn::If"][2] == {"Ref": "AWS::NoValue"} for entry in job)
    statements = [logs, *(entry["Fn::If"][1] for entry in job)]
    assert {action for statement in statements for action in statement["Action"]} == ACTIONS_OF_THE_DAILY_RETRAIN
    assert all(statement["Effect"] == "Allow" and "NotAction" not in statement for statement in statements)
    resources = {json.dumps(statement["Resource"]) for statement in statements[1:]}
    assert resources == {json.dumps([{"Ref": "RetrainJobResourceArn"}]), json.dumps({"Ref": "RetrainPassRoleArns"})}
    for parameter in ("RetrainJob", "RetrainJobResourceArn", "RetrainPassRoleArns"):
        assert template["Parameters"][parameter]["Default"] == ""


@pytest.mark.parametrize("retrain_job", ["", json.dumps({"engine": "ecs", "cluster": "recommender",
                                                        "task_definition": "recommender-retrain:3",
                                                        "subnets": ["subnet-0a1b2c"], "container": "retrain"})])
def test_the_daily_retrain_runs_daily_with_what_the_stack_gives_it(template, retrain_job):
    function = template["Resources"]["DailyRetrain"]["Properties"]
    [event] = function["Events"].values()
    assert event == {"Type": "Schedule", "Properties": {"Schedule": "cron(0 3 * * ? *)"}}
    given = {name: retrain_job if value == {"Ref": "RetrainJob"} else _resolve(value)
             for name, value in function["Environment"]["Variables"].items()}
    settings = load_settings({**stage_environment("prod"), **given})
    assert settings.model_bucket == "resolved-ModelBucket"
    assert (settings.retrain_job is not None) == bool(retrain_job)


#: What the insight counters' stream consumer calls, and why: nothing of the API's.
ACTIONS_OF_THE_INSIGHT_COUNTERS = {
    "logs:CreateLogStream", "logs:PutLogEvents",                     # its log lines
    "dynamodb:DescribeStream", "dynamodb:GetRecords",                # Lambda polls the events table's stream
    "dynamodb:GetShardIterator", "dynamodb:ListStreams",             # for the function, with its role
    "dynamodb:UpdateItem", "dynamodb:GetItem",                       # counts ADDed, sketches merged (counter_writer)
    "dynamodb:DescribeTable", "dynamodb:BatchGetItem",               # the catalog's categories of the events' items
}


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_stream_consumer_may_read_the_stream_and_update_the_counters_only(template, stage):
    config = json.loads((CHALICE_DIR / "config.json").read_text())["stages"][stage]
    policy = json.loads((CHALICE_DIR / config["lambda_functions"]["insight_counters"]["iam_policy_file"]).read_text())
    statements = policy["Statement"]
    granted = {(action, json.dumps(resource)) for statement in statements for action in statement["Action"]
               for resource in statement["Resource"]}

    assert {action for action, _ in granted} == ACTIONS_OF_THE_INSIGHT_COUNTERS
    assert all(statement["Effect"] == "Allow" and "NotAction" not in statement and "NotResource" not in statement
               for statement in statements)
    where = {"logs": {"Fn::GetAtt": ["InsightCountersLogGroup", "Arn"]},
             "dynamodb:DescribeStream": {"Fn::GetAtt": ["EventsTable", "StreamArn"]},
             "dynamodb:UpdateItem": {"Fn::GetAtt": ["InsightsTable", "Arn"]},
             "dynamodb:BatchGetItem": {"Fn::GetAtt": ["CatalogTable", "Arn"]}}
    stream_actions = {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator",
                      "dynamodb:ListStreams"}
    for action, resource in granted:
        key = ("logs" if action.startswith("logs:") else "dynamodb:DescribeStream" if action in stream_actions
               else "dynamodb:UpdateItem" if action in ("dynamodb:UpdateItem", "dynamodb:GetItem")
               else "dynamodb:BatchGetItem")
        assert json.loads(resource) == where[key], (action, resource)
    # The API's role reads the counters (the insight routes) and never writes them in stream mode.
    api = json.loads((CHALICE_DIR / config["iam_policy_file"]).read_text())["Statement"]
    on_counters = {action for statement in api for action in statement["Action"]
                   if {"Fn::GetAtt": ["InsightsTable", "Arn"]} in statement["Resource"]}
    assert on_counters == {"dynamodb:Query"}


def test_the_stream_consumer_reads_the_stacks_stream_with_bounded_retries(template):
    function = template["Resources"]["InsightCounters"]["Properties"]
    [source] = function["Events"].values()
    properties = source["Properties"]

    assert source["Type"] == "DynamoDB"
    assert properties["Stream"] == {"Fn::GetAtt": ["EventsTable", "StreamArn"]}  # not chalice's stand-in
    assert properties["StartingPosition"] == "LATEST" and properties["BatchSize"] == 100
    assert properties["BisectBatchOnFunctionError"] is True and 0 < properties["MaximumRetryAttempts"] <= 10
    assert properties["MaximumRecordAgeInSeconds"] <= 86400  # the stream keeps records 24 hours
    assert function["Handler"] == "chalicelib.api.streams.insight_counters"
    given = {name: _resolve(value) for name, value in function["Environment"]["Variables"].items()}
    settings = load_settings(given)
    assert (settings.events_table, settings.catalog_table_name, settings.insights_table_name) == (
        "resolved-EventsTable", "resolved-CatalogTable", "resolved-InsightsTable")
    assert settings.insights_counters == "stream"


def _resolve(value):
    """A CloudFormation value with Ref / GetAtt / Sub replaced by recognisable stand-ins."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        if value["Ref"] == "UserTokenSigningSecret":  # a secret's Ref is its ARN
            return "arn:aws:secretsmanager:us-east-1:123456789012:secret:resolved-UserTokenSigningSecret"
        return f"resolved-{value['Ref']}"
    if "Fn::GetAtt" in value:
        name, attribute = value["Fn::GetAtt"]
        assert attribute == "Arn"
        return f"resolved-arn-of-{name}"
    if "Fn::Sub" in value:
        def substitute(match: re.Match) -> str:
            name = match.group(1)
            if name.endswith(".Arn"):
                return f"resolved-arn-of-{name[:-4]}"
            return _resolve({"Ref": name})
        return re.sub(r"\$\{([\w.:]+)\}", substitute, value["Fn::Sub"])
    raise AssertionError(f"unexpected CloudFormation value {value!r}")
