"""The AWS stack: serverless.yml packages offline, lints clean, and says what the design says.

Real tools, no AWS account: ``npx osls package`` (the open-source Serverless Framework)
with the ``serverless-step-functions`` plugin, ``cfn-lint``, ``asl-validator`` and moto's
standalone server for ``CreateStateMachine``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from pipeline_support import (
    ASL_ROUTER,
    ASL_V2,
    REPO,
    MotoServer,
    env_without_aws_credentials,
    require_node,
)

STAGES = ["extract", "load", "thread", "dedupe", "index"]
NVME_FAMILIES = {"c6id", "m6id", "r6id", "i4i"}


IMAGE_TAG = "2026.1.0-test"


def osls(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``npx osls <args>`` in the repository, with no AWS credentials and *env* added."""
    npx = require_node()
    return subprocess.run(
        [npx, "--no-install", "osls", *args],
        cwd=REPO,
        env={**env_without_aws_credentials(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def package(out: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """The CloudFormation template ``osls package --stage prod <args>`` writes into *out*."""
    proc = osls(["package", "--stage", "prod", *args, "--package", str(out)],
                env={"PSTFAST_IMAGE_TAG": IMAGE_TAG, **(env or {})})
    assert proc.returncode == 0, f"osls package failed:\n{proc.stdout}\n{proc.stderr}"
    path = out / "cloudformation-template-update-stack.json"
    assert path.is_file(), f"no template in {sorted(p.name for p in out.iterdir())}"
    data: dict[str, Any] = json.loads(path.read_text())
    data["__path__"] = str(path)
    return data


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The CloudFormation template ``osls package --stage prod`` writes, with no credentials."""
    return package(tmp_path_factory.mktemp("sls-package"))


@pytest.fixture(scope="module")
def template_existing_vpc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The template for an existing VPC and subnets (the stack creates only the security group)."""
    return package(tmp_path_factory.mktemp("sls-package-vpc"),
                   "--param", "vpcId=vpc-0abc", "--param", "subnetIds=subnet-1,subnet-2")


def cfn_lint_errors(path: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "cfnlint", "--format", "parseable", path],
        capture_output=True,
        text=True,
        timeout=300,
    )
    errors = [line for line in proc.stdout.splitlines() if ":E" in line]
    # exit code bit 2 = errors (4 = warnings, 8 = informational)
    if proc.returncode & 2 and not errors:
        errors = [f"exit {proc.returncode}: {proc.stdout}{proc.stderr}"]
    return errors


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def compiled_definition(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    """A state machine's DefinitionString with each ``${Ref}`` replaced by a dummy ARN."""
    sub = template["Resources"][logical_id]["Properties"]["DefinitionString"]["Fn::Sub"]
    text = sub[0] if isinstance(sub, list) else sub
    text = re.sub(r"\$\{([A-Za-z0-9:]+)\}", lambda m: f"arn:aws:dummy:::{m.group(1)}", text)
    return json.loads(text)


def load_asl(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def batch_tasks(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: state
        for name, state in definition["States"].items()
        if state.get("Resource") == "arn:aws:states:::batch:submitJob.sync"
    }


# --- packaging and linters ---------------------------------------------------------------


def test_osls_package_without_credentials(template: dict[str, Any]) -> None:
    kinds = {r["Type"] for r in template["Resources"].values()}
    for kind in (
        "AWS::SQS::Queue",
        "AWS::Pipes::Pipe",
        "AWS::StepFunctions::StateMachine",
        "AWS::Batch::ComputeEnvironment",
        "AWS::Batch::JobQueue",
        "AWS::Batch::JobDefinition",
        "AWS::EC2::LaunchTemplate",
        "AWS::S3::Bucket",
    ):
        assert kind in kinds, f"{kind} missing from the packaged template"


def test_cfn_lint_reports_no_errors(template: dict[str, Any]) -> None:
    errors = cfn_lint_errors(template["__path__"])
    assert not errors, "cfn-lint errors:\n" + "\n".join(errors)


# --- package-time options (batch/stack.js) --------------------------------------------------


def test_default_network_is_created_by_the_stack(template: dict[str, Any]) -> None:
    assert set(resources(template, "AWS::EC2::VPC")) == {"Vpc"}
    assert set(resources(template, "AWS::EC2::Subnet")) == {"SubnetA", "SubnetB"}
    assert "S3Endpoint" in resources(template, "AWS::EC2::VPCEndpoint")
    compute = template["Resources"]["ComputeEnvironment"]["Properties"]["ComputeResources"]
    assert compute["Subnets"] == [{"Ref": "SubnetA"}, {"Ref": "SubnetB"}]
    assert compute["SecurityGroupIds"] == [{"Ref": "BatchSecurityGroup"}]
    group = template["Resources"]["BatchSecurityGroup"]["Properties"]
    assert group["VpcId"] == {"Ref": "Vpc"}
    assert "SecurityGroupIngress" not in group


def test_existing_vpc_and_subnets_from_params(template_existing_vpc: dict[str, Any]) -> None:
    t = template_existing_vpc
    for kind in ("AWS::EC2::VPC", "AWS::EC2::Subnet", "AWS::EC2::InternetGateway", "AWS::EC2::RouteTable",
                 "AWS::EC2::VPCEndpoint"):
        assert not resources(t, kind), f"{kind} created although --param vpcId names an existing VPC"
    compute = t["Resources"]["ComputeEnvironment"]["Properties"]["ComputeResources"]
    assert compute["Subnets"] == ["subnet-1", "subnet-2"]
    # no security group named: the stack creates its egress-only group in that VPC
    assert compute["SecurityGroupIds"] == [{"Ref": "BatchSecurityGroup"}]
    assert t["Resources"]["BatchSecurityGroup"]["Properties"]["VpcId"] == "vpc-0abc"
    # everything else is the same stack
    assert set(resources(t, "AWS::Batch::JobDefinition")) and "PstIngestV2" in t["Resources"]
    errors = cfn_lint_errors(t["__path__"])
    assert not errors, "cfn-lint errors:\n" + "\n".join(errors)


def test_existing_security_groups_from_params(tmp_path: Path) -> None:
    t = package(tmp_path, "--param", "vpcId=vpc-0abc", "--param", "subnetIds=subnet-1,subnet-2",
                "--param", "securityGroupIds=sg-11,sg-22")
    assert not resources(t, "AWS::EC2::SecurityGroup") and not resources(t, "AWS::EC2::VPC")
    compute = t["Resources"]["ComputeEnvironment"]["Properties"]["ComputeResources"]
    assert compute["Subnets"] == ["subnet-1", "subnet-2"]
    assert compute["SecurityGroupIds"] == ["sg-11", "sg-22"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--param", "vpcId=vpc-0abc"], "--param vpcId needs --param subnetIds"),
        (["--param", "subnetIds=subnet-1"], "need --param vpcId"),
        (["--param", "vpcId=vpc-0abc", "--param", "subnetIds=sn-1"], '"sn-1" is not a subnet-... id'),
        (["--param", "vpcId=my-vpc", "--param", "subnetIds=subnet-1"], '"my-vpc" is not a vpc-... id'),
    ],
    ids=["vpc-without-subnets", "subnets-without-vpc", "bad-subnet-id", "bad-vpc-id"],
)
def test_bad_network_params_are_one_clear_error(tmp_path: Path, args: list[str], message: str) -> None:
    proc = osls(["package", "--stage", "prod", *args, "--package", str(tmp_path)],
                env={"PSTFAST_IMAGE_TAG": IMAGE_TAG})
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert "    at " not in proc.stdout + proc.stderr  # no JavaScript stack trace


@pytest.mark.parametrize("tag", [None, "latest"], ids=["no-tag", "latest"])
def test_prod_needs_an_image_tag(tmp_path: Path, tag: str | None) -> None:
    env = {"PSTFAST_IMAGE_TAG": tag} if tag else {}
    proc = osls(["package", "--stage", "prod", "--package", str(tmp_path)], env=env)
    assert proc.returncode != 0
    assert "--stage prod needs the image tag" in proc.stdout + proc.stderr
    assert not (tmp_path / "cloudformation-template-update-stack.json").exists()


def test_image_tag_from_param_and_dev_defaults_to_latest(tmp_path: Path) -> None:
    t = package(tmp_path / "prod", "--param", "imageTag=v7", env={"PSTFAST_IMAGE_TAG": ""})
    image = t["Resources"]["ExtractJobDefinition"]["Properties"]["ContainerProperties"]["Image"]["Fn::Sub"]
    assert image.endswith("/${ImageRepository}:v7")
    proc = osls(["print", "--stage", "dev", "--path", "custom.imageTag"])
    assert proc.returncode == 0 and proc.stdout.strip() == "latest", proc.stdout + proc.stderr


def test_deployment_method_switch() -> None:
    default = osls(["print", "--stage", "dev", "--path", "provider.deploymentMethod"])
    assert default.returncode == 0 and default.stdout.strip() == "changesets", default.stdout + default.stderr
    direct = osls(["print", "--stage", "dev", "--path", "provider.deploymentMethod"],
                  env={"PSTFAST_DEPLOY_METHOD": "direct"})
    assert direct.returncode == 0 and direct.stdout.strip() == "direct", direct.stdout + direct.stderr
    bad = osls(["print", "--stage", "dev", "--path", "provider.deploymentMethod"],
               env={"PSTFAST_DEPLOY_METHOD": "yolo"})
    assert bad.returncode != 0 and 'PSTFAST_DEPLOY_METHOD="yolo"' in bad.stdout + bad.stderr


def test_compute_environment_names_a_batch_service_role(template: dict[str, Any]) -> None:
    ce = template["Resources"]["ComputeEnvironment"]["Properties"]
    assert ce["ServiceRole"] == {"Fn::GetAtt": ["BatchServiceRole", "Arn"]}
    role = template["Resources"]["BatchServiceRole"]["Properties"]
    (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "batch.amazonaws.com"}
    assert not role.get("Policies")  # only AWS's managed Batch service policy
    (managed,) = role["ManagedPolicyArns"]
    assert managed["Fn::Sub"].endswith(":iam::aws:policy/service-role/AWSBatchServiceRole")


@pytest.mark.parametrize("path", [ASL_V2, ASL_ROUTER], ids=lambda p: p.name)
def test_asl_validator_accepts_the_package_files(path: Path) -> None:
    npx = require_node()
    proc = subprocess.run(
        [npx, "--no-install", "asl-validator", "--yaml-path", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("logical_id", ["PstIngestV2", "PstIngestRouter"])
def test_asl_validator_accepts_the_deployed_definitions(
    template: dict[str, Any], logical_id: str, tmp_path: Path
) -> None:
    npx = require_node()
    path = tmp_path / f"{logical_id}.json"
    path.write_text(json.dumps(compiled_definition(template, logical_id)))
    proc = subprocess.run(
        [npx, "--no-install", "asl-validator", "--json-path", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def moto() -> Any:
    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("logical_id", ["PstIngestV2", "PstIngestRouter"])
def test_moto_create_state_machine_accepts(template: dict[str, Any], moto: MotoServer, logical_id: str) -> None:
    env = moto.env()
    sfn = boto3.client(
        "stepfunctions",
        endpoint_url=moto.url,
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    definition = json.dumps(compiled_definition(template, logical_id))
    arn = sfn.create_state_machine(
        name=f"{logical_id}-test",
        definition=definition,
        roleArn="arn:aws:iam::123456789012:role/pstfast-test",
        type="STANDARD",
    )["stateMachineArn"]
    described = sfn.describe_state_machine(stateMachineArn=arn)
    assert json.loads(described["definition"]) == json.loads(definition)


# --- one definition, two engines ----------------------------------------------------------


def test_serverless_includes_the_package_asl_files() -> None:
    text = (REPO / "serverless.yml").read_text()
    assert "${file(./pstfast/pipeline/pst_ingest_v2.asl.yaml)}" in text
    assert "${file(./pstfast/pipeline/pst_ingest_router.asl.yaml)}" in text


@pytest.mark.parametrize(("logical_id", "path"), [("PstIngestV2", ASL_V2), ("PstIngestRouter", ASL_ROUTER)])
def test_deployed_definition_is_the_package_file(template: dict[str, Any], logical_id: str, path: Path) -> None:
    """What CloudFormation deploys is the package file, with only '#{X}' turned into refs."""
    deployed = compiled_definition(template, logical_id)
    for state in deployed["States"].values():
        # the plugin's validator fills in the default query language; same meaning
        if state.get("QueryLanguage") == "JSONPath":
            del state["QueryLanguage"]
    text = json.dumps(load_asl(path))
    expected = json.loads(re.sub(r"#\{([A-Za-z0-9:]+)\}", lambda m: f"arn:aws:dummy:::{m.group(1)}", text))
    assert deployed == expected


# --- what the stack must say ---------------------------------------------------------------


def test_pipe_is_fire_and_forget_batch_one_and_keeps_the_body_as_json(template: dict[str, Any]) -> None:
    (pipe,) = resources(template, "AWS::Pipes::Pipe").values()
    props = pipe["Properties"]
    assert props["Source"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    assert props["SourceParameters"]["SqsQueueParameters"]["BatchSize"] == 1
    target = props["TargetParameters"]
    assert target["StepFunctionStateMachineParameters"]["InvocationType"] == "FIRE_AND_FORGET"
    assert target["InputTemplate"] == '{"job": <$.body>}'
    assert props["Target"] == {"Ref": "PstIngestRouter"}


def test_queue_has_dlq_redrive_encryption_and_retention(template: dict[str, Any]) -> None:
    queue = template["Resources"]["IngestQueue"]["Properties"]
    dlq = template["Resources"]["IngestDeadLetterQueue"]["Properties"]
    redrive = queue["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["IngestDeadLetterQueue", "Arn"]}
    assert int(redrive["maxReceiveCount"]) >= 1
    for props in (queue, dlq):
        assert props["SqsManagedSseEnabled"] is True
        assert int(props["MessageRetentionPeriod"]) >= 4 * 86400
    assert int(dlq["MessageRetentionPeriod"]) == 14 * 86400


def test_router_names_the_execution_by_pst_file_id_and_treats_duplicates_as_success() -> None:
    router = load_asl(ASL_ROUTER)
    start = router["States"][router["StartAt"]]
    assert start["Resource"] == "arn:aws:states:::states:startExecution.sync:2"
    assert start["InputPath"] == "$[0]"
    assert "$.job.pst_file_id" in start["Parameters"]["Name.$"]
    (catch,) = start["Catch"]
    assert catch["ErrorEquals"] == ["StepFunctions.ExecutionAlreadyExistsException"]
    assert router["States"][catch["Next"]]["Type"] == "Succeed"


def test_five_batch_stages_with_exponential_backoff_and_catch_to_dlq() -> None:
    v2 = load_asl(ASL_V2)
    tasks = batch_tasks(v2)
    commands = {name: state["Parameters"]["ContainerOverrides"]["Command.$"] for name, state in tasks.items()}
    stage_names = [re.match(r"States\.Array\('pipeline', 'stage', '(\w+)'", c) for c in commands.values()]
    assert [m.group(1) for m in stage_names if m] == STAGES
    for name, state in tasks.items():
        (retry,) = state["Retry"]
        assert retry["ErrorEquals"] == ["States.TaskFailed"], name
        assert retry["BackoffRate"] > 1, name
        assert retry["MaxAttempts"] >= 2 and retry["IntervalSeconds"] >= 1, name
        assert retry["JitterStrategy"] == "FULL", name
        assert "MaxDelaySeconds" in retry, name
    # every stage: Catch -> MarkFailed (a Batch task) -> sqs:sendMessage to the DLQ -> Fail
    for name in [n for n, c in commands.items() if c.startswith("States.Array('pipeline', 'stage'")]:
        (catch,) = tasks[name]["Catch"]
        assert catch["ErrorEquals"] == ["States.ALL"]
        assert catch["Next"] == "MarkFailed"
    mark = v2["States"]["MarkFailed"]
    assert mark["Resource"] == "arn:aws:states:::batch:submitJob.sync"
    send = v2["States"][mark["Next"]]
    assert send["Resource"] == "arn:aws:states:::sqs:sendMessage"
    assert send["Parameters"]["QueueUrl"] == "#{IngestDeadLetterQueue}"
    assert v2["States"][send["Next"]]["Type"] == "Fail"


def test_rejected_input_fails_fast_via_the_stage_manifest() -> None:
    """After each stage a getObject reads its stage manifest; 'rejected' skips all retries."""
    v2 = load_asl(ASL_V2)
    states = v2["States"]
    for stage in STAGES:
        task = states[stage.capitalize()]
        check = states[task["Next"]]
        assert check["Resource"] == "arn:aws:states:::aws-sdk:s3:getObject"
        assert f"stages/{stage}/manifest.json" in check["Parameters"]["Key.$"]
        choice = states[check["Next"]]
        assert choice["Type"] == "Choice"
        (rule,) = choice["Choices"]
        assert rule["Variable"] == "$.check.manifest.status" and rule["StringEquals"] == "rejected"
        assert states[rule["Next"]]["Next"] == "MarkFailed"


def test_job_definitions_mount_nvme_scratch_and_retry_host_loss(template: dict[str, Any]) -> None:
    jobdefs = resources(template, "AWS::Batch::JobDefinition")
    names = {j["Properties"]["JobDefinitionName"] for j in jobdefs.values()}
    assert {f"pstfast-prod-{s}" for s in STAGES} <= names
    for logical_id, jobdef in jobdefs.items():
        props = jobdef["Properties"]
        assert props["PlatformCapabilities"] == ["EC2"], logical_id
        container = props["ContainerProperties"]
        volumes = {v["Name"]: v["Host"]["SourcePath"] for v in container["Volumes"]}
        mounts = {m["SourceVolume"]: m["ContainerPath"] for m in container["MountPoints"]}
        assert volumes == {"scratch": "/scratch"} and mounts == {"scratch": "/scratch"}, logical_id
        env = {e["Name"]: e["Value"] for e in container["Environment"]}
        assert env["PSTFAST_SCRATCH"] == "/scratch", logical_id
        kinds = {r["Type"] for r in container["ResourceRequirements"]}
        assert kinds == {"VCPU", "MEMORY"}, logical_id
        assert "Image" in container
        retry = props["RetryStrategy"]
        assert any(e.get("OnStatusReason", "").startswith("Host EC2") and e["Action"] == "RETRY"
                   for e in retry["EvaluateOnExit"]), logical_id


def test_launch_template_builds_raid0_scratch_and_compute_env_uses_nvme_families(template: dict[str, Any]) -> None:
    (lt,) = resources(template, "AWS::EC2::LaunchTemplate").values()
    user_data = lt["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]
    assert user_data.startswith("MIME-Version: 1.0")
    assert "multipart/mixed" in user_data and "text/cloud-boothook" in user_data
    assert "mdadm --create" in user_data and "--level=0" in user_data
    assert "nvme-Amazon_EC2_NVMe_Instance_Storage" in user_data and " /scratch" in user_data
    (ce,) = resources(template, "AWS::Batch::ComputeEnvironment").values()
    compute = ce["Properties"]["ComputeResources"]
    assert compute["Type"] == "EC2"
    assert set(compute["InstanceTypes"]) <= NVME_FAMILIES
    assert compute["LaunchTemplate"]["LaunchTemplateId"] == {"Ref": "NvmeLaunchTemplate"}


def test_buckets_private_encrypted_tls_only(template: dict[str, Any]) -> None:
    buckets = resources(template, "AWS::S3::Bucket")
    policies = resources(template, "AWS::S3::BucketPolicy")
    for logical_id in ("DocsBucket", "PipelineBucket"):
        props = buckets[logical_id]["Properties"]
        assert all(props["PublicAccessBlockConfiguration"].values()), logical_id
        (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
        (policy,) = [p for p in policies.values() if p["Properties"]["Bucket"] == {"Ref": logical_id}]
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s["Condition"]["Bool"]["aws:SecureTransport"] == "false" for s in statements
        ), logical_id


# actions AWS does not allow to scope to a resource
UNSCOPABLE = {
    "batch:DescribeJobs",
    "ecr:GetAuthorizationToken",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}


def test_iam_is_least_privilege(template: dict[str, Any]) -> None:
    roles = resources(template, "AWS::IAM::Role")
    assert roles, "no IAM roles"
    for logical_id, role in roles.items():
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                assert all("*" not in a for a in actions), f"{logical_id}: wildcard action {actions}"
                res = statement["Resource"]
                res = res if isinstance(res, list) else [res]
                if "*" in res:
                    assert set(actions) <= UNSCOPABLE, f"{logical_id}: '*' resource for {actions}"
