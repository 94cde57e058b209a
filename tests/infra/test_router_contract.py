"""The templates and the code they run agree: handler path, environment names, routes,
and the zip the function is given."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra.conftest import INFRA, ROOT, load_template

MVP = load_template(INFRA / "mvp.yaml")
STACK = load_template(INFRA / "stack.yaml")
HANDLER = "backend.entrypoints.router.handler"


def router_env(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]["RouterFunction"]["Properties"]["Environment"]["Variables"]


def names_the_code_reads() -> tuple[set[str], set[str]]:
    """(every environment name backend/ reads, the ones it requires).

    A name is read when it is a string constant given to os.environ.get / os.getenv /
    os.environ[...] or to a small helper such as settings._float; it is required when
    the code only ever subscripts it (a .get somewhere means it is checked first).
    """
    read: set[str] = set()
    subscripted: set[str] = set()
    for path in (ROOT / "backend").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Subscript) and ast.unparse(node.value) in ("os.environ", "environ"):
                if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
                    subscripted.add(node.slice.value)
            elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                func = ast.unparse(node.func)
                value = node.args[0].value
                if isinstance(value, str) and (func in ("os.environ.get", "os.getenv", "environ.get")
                                               or (func.startswith("_") and value.isupper())):
                    read.add(value)
    return read | subscripted, subscripted - read


@pytest.mark.parametrize("template", [MVP, STACK], ids=["mvp", "stack"])
def test_handler_path_is_the_real_handler(template: dict[str, Any]) -> None:
    props = template["Resources"]["RouterFunction"]["Properties"]
    assert props["Handler"] == HANDLER
    assert props["Runtime"] == "python3.12"
    module, attr = HANDLER.rsplit(".", 1)
    assert callable(getattr(importlib.import_module(module), attr))


@pytest.mark.parametrize("template", [MVP, STACK], ids=["mvp", "stack"])
def test_every_variable_the_template_sets_is_read_by_the_code(template: dict[str, Any]) -> None:
    read, _ = names_the_code_reads()
    assert set(router_env(template)) <= read, set(router_env(template)) - read


def test_the_stack_sets_what_the_router_needs() -> None:
    _, required = names_the_code_reads()
    env = set(router_env(STACK))
    assert required <= env, required - env
    assert {"INSTANCE_ID", "COGNITO_CLIENT_ID"} <= required  # the check above checks something
    assert {"REDIS_HOST", "REDIS_PORT", "REDIS_AUTH_SECRET", "COMPUTE_KIND", "INSTANCE_ID",
            "FALLBACK_INSTANCE_TYPE", "BUDGET_HARD_CAP_USD", "BUDGET_WARNING_USD", "BUDGET_NAME",
            "ACCOUNT_ID", "RESULT_TTL_S", "COGNITO_REGION", "COGNITO_USER_POOL_ID",
            "COGNITO_CLIENT_ID", "REQUIRED_SCOPE", "GPU_PRICE_PER_HOUR_USD"} <= env
    # `POST /` is public on both stacks; only the MVP's keeps a prompt log in S3, so an
    # anonymous caller cannot write into the full stack's data bucket.
    assert "DATA_BUCKET" not in env
    assert {"DATA_BUCKET", "OPENAI_SECRET"} <= set(router_env(MVP))


def test_compute_kinds_are_ones_the_router_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    from backend.adapters.compute_ec2 import Ec2Compute
    from backend.entrypoints import settings

    monkeypatch.setenv("COMPUTE_KIND", router_env(STACK)["COMPUTE_KIND"])
    monkeypatch.setenv("INSTANCE_ID", "i-0123456789abcdef0")
    monkeypatch.setenv("FALLBACK_INSTANCE_TYPE", STACK["Parameters"]["FallbackInstanceType"]["Default"])
    compute = settings.compute_from_env()
    assert isinstance(compute, Ec2Compute) and compute.instance_id == "i-0123456789abcdef0"
    monkeypatch.setenv("COMPUTE_KIND", router_env(MVP)["COMPUTE_KIND"])
    assert not isinstance(settings.compute_from_env(), Ec2Compute)


def test_worker_environment_names_are_read_by_the_code() -> None:
    read, _ = names_the_code_reads()
    user_data = STACK["Resources"]["WorkerLaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]
    script = user_data["Fn::Base64"]["Fn::Sub"][0]
    env_file = script.split("<<'EOF'\n", 1)[1].split("\nEOF\n", 1)[0]
    names = {line.split("=", 1)[0] for line in env_file.splitlines()}
    # MODEL comes from model.env, written where the weights are installed, so vLLM and
    # the worker name the same model whichever AMI the instance booted from.
    install = (INFRA / "image" / "install_worker.sh").read_text()
    assert 'echo "MODEL=$model" > /etc/tinyllama/model.env' in install
    assert install.count("EnvironmentFile=/etc/tinyllama/model.env") == 2
    names.add("MODEL")
    assert {"REDIS_HOST", "REDIS_PORT", "REDIS_AUTH_SECRET", "ENGINE", "ENGINE_URL", "MODEL",
            "IDLE_TIMEOUT_S", "IDLE_ACTION", "AWS_REGION"} <= names
    assert names - {"AWS_REGION"} <= read, names - read  # AWS_REGION is boto3's


def test_the_serverless_redis_profile_selects_the_cluster_client_for_router_and_worker() -> None:
    # ElastiCache Serverless is cluster mode only: without the cluster client every MOVED is
    # an error (tests/integration/test_queue_cluster.py shows the queue works with it).
    # Every profile's values: tests/infra/test_redis_profiles.py.
    profile = {"Fn::FindInMap": ["RedisProfile", {"Ref": "RedisMode"}, "Cluster"]}
    assert {mode: v["Cluster"] for mode, v in STACK["Mappings"]["RedisProfile"].items()} == {
        "instance": "0", "elasticache-node": "0", "serverless-valkey": "1"}
    assert router_env(STACK)["REDIS_CLUSTER"] == profile
    script, names = STACK["Resources"]["WorkerLaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"][
        "Fn::Base64"]["Fn::Sub"]
    assert "\nREDIS_CLUSTER=${RedisCluster}\n" in script and names["RedisCluster"] == profile


def test_routes_and_their_auth_follow_the_openapi_contract() -> None:
    spec = yaml.safe_load((INFRA / "openapi.yaml").read_text())
    expected = {}
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method in ("get", "post", "put", "delete", "patch"):
                public = op.get("security", spec.get("security")) == []
                expected[f"{method.upper()} {path}"] = public
    routes = {r["Properties"]["RouteKey"]: r["Properties"] for r in STACK["Resources"].values()
              if r["Type"] == "AWS::ApiGatewayV2::Route"}
    assert set(routes) == set(expected)
    for key, props in routes.items():
        if expected[key]:
            assert props["AuthorizationType"] == "NONE", key
        else:
            assert props["AuthorizationType"] == "JWT", key
            assert props["AuthorizationScopes"] == [{"Ref": "RequiredScope"}], key


def test_buildspec_ships_the_zip_the_packager_builds() -> None:
    spec = yaml.safe_load((INFRA / "buildspec.yml").read_text())
    commands = "\n".join(spec["phases"]["build"]["commands"])
    assert "packaging/build_router_zip.py --out build/router.zip" in commands
    assert "update-function-code" in commands and "fileb://build/router.zip" in commands
    assert spec["env"]["variables"]["FUNCTION_NAME"] == MVP["Resources"]["RouterFunction"]["Properties"]["FunctionName"]
    build_env = MVP["Resources"]["RouterBuild"]["Properties"]["Environment"]["EnvironmentVariables"]
    assert {"Name": "FUNCTION_NAME", "Value": {"Ref": "RouterFunction"}} in build_env
    assert MVP["Resources"]["RouterBuild"]["Properties"]["Source"]["BuildSpec"] == "infra/buildspec.yml"


# ---- the zip itself (fetches wheels from PyPI)

RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py", "urllib3")


def build_zip(out: Path, python_version: str) -> None:
    subprocess.run([sys.executable, str(ROOT / "packaging" / "build_router_zip.py"), "--out", str(out),
                    "--python-version", python_version], check=True, capture_output=True, timeout=600)


# Reached only through settings.engine_from_env, which the worker calls and the router never does.
WORKER_ONLY = {"openai"}


def third_party_imports(start: str = "backend.entrypoints.router") -> set[str]:
    """Top-level names of every non-stdlib import reachable from `start`, lazy ones included."""
    def source(module: str) -> Path | None:
        for path in (ROOT / (module.replace(".", "/") + ".py"), ROOT / module.replace(".", "/") / "__init__.py"):
            if path.exists():
                return path
        return None

    seen: set[str] = set()
    found: set[str] = set()
    todo = [start]
    while todo:
        module = todo.pop()
        path = None if module in seen else source(module)
        seen.add(module)
        if path is None:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top == "backend":
                    todo.append(name)
                elif top not in sys.stdlib_module_names and top != "__future__":
                    found.add(top)
    return found


@pytest.mark.slow
def test_router_zip_holds_only_what_the_function_imports(tmp_path: Path) -> None:
    out = tmp_path / "router.zip"
    build_zip(out, "3.12")
    names = zipfile.ZipFile(out).namelist()
    tops = {n.split("/", 1)[0] for n in names}
    assert "backend/entrypoints/router.py" in names
    assert {"redis", "jwt", "aws_lambda_powertools", "requests", "cryptography"} <= tops
    assert not tops & {"desktop", "boto3", "botocore", "s3transfer", "PySide6", "openai"}
    for local_only in ("commands.py", "__main__.py", "local.py", "local_service.py", "watchdog.py", "gateway.py"):
        assert f"backend/entrypoints/{local_only}" not in names
    needed = third_party_imports()
    assert {"redis", "jwt", "requests", "aws_lambda_powertools"} <= needed  # the walk finds imports
    assert needed - WORKER_ONLY <= tops | {"boto3", "botocore"}, needed - tops
    natives = [n for n in names if n.endswith(".so")]
    assert natives and all("x86_64" in n or "abi3" in n for n in natives)
    assert any("cpython-312" in n for n in natives)  # built for the runtime, not this interpreter
    assert out.stat().st_size < 50 * 1024 * 1024


@pytest.mark.slow
def test_router_zip_answers_the_echo_with_only_the_runtimes_packages(tmp_path: Path) -> None:
    """Import the handler from the unpacked zip with nothing else but what Lambda provides."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"  # the same zip, for this interpreter
    out = tmp_path / "router.zip"
    build_zip(out, version)
    code = tmp_path / "code"
    zipfile.ZipFile(out).extractall(code)
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    site = Path(importlib.import_module("boto3").__file__).parents[1]
    for name in RUNTIME_PROVIDED:
        (runtime / name).symlink_to(site / name)
    # The event is made here: the local gateway that makes them is not in the zip.
    from backend.entrypoints.gateway import make_event

    event = make_event("POST", "/", {}, b"hello zip", None, "127.0.0.1")
    script = (
        "import json, sys\n"
        f"sys.path[:0] = [{str(code)!r}, {str(runtime)!r}]\n"
        "from backend.entrypoints.router import handler\n"
        f"r = handler(json.loads({json.dumps(event)!r}), None)\n"
        "print(json.dumps(r))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1", "COMPUTE_KIND": "none"}
    result = subprocess.run([sys.executable, "-S", "-c", script], capture_output=True, text=True,
                            env=env, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["statusCode"] == 200
    assert json.loads(answer["body"])["echo"] == "hello zip"


def test_the_full_stacks_router_role_cannot_write_s3_or_stop_the_gpu() -> None:
    """Least privilege: the router wakes the GPU and reads Redis' secret and the budget;
    its public echo stores nothing, and stopping is the worker's and the alarms' job."""
    statements = STACK["Resources"]["RouterRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert "ec2:StartInstances" in actions  # the check below looks at the real policy
    assert not {a for a in actions if a.startswith("s3:")}, actions
    assert "ec2:StopInstances" not in actions
