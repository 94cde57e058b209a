"""Build the TinyLlama bundle with PyInstaller, smoke-test it, and say what is in it.

    python packaging/build.py [--dist DIR] [--work DIR] [--skip-local]

One command, as a release is built: PyInstaller runs packaging/tinyllama.spec into
`dist/tinyllama/` (`dist/TinyLlama.app` too on macOS), then the bundle itself is started:

1. `tinyllama --version` must print pyproject.toml's version;
2. the app, offscreen with TINYLLAMA_SMOKE_TEST=1, must show and paint its main window,
   write its log file and exit 0;
3. `tinyllama local` (the Local profile's stack: redis-server from the PATH, the router,
   the gateway and a worker spawned from the bundle) must answer one prompt;
4. `tinyllama deploy --template mvp|stack --direct --yes` must deploy both stacks to a moto
   server on a free port, uploading the bundled artifacts: the Lambda function's CodeSha256
   must be the bundled router zip's (moto cannot model every resource, so the templates are
   the ones tests/infra/test_moto_deploy.py's `for_moto` adapts; needs the `test` extra).

Before PyInstaller, packaging/build_artifacts.py builds the release artifacts (router zip,
worker wheel, manifest) into `<work>/artifacts`, which the bundle carries.

Each step fails on a non-zero exit or on any stderr line that is not an INFO/DEBUG log
line (or the offscreen platform's known notice). Settings, history and logs go to a
temporary home, never the user's. Exits non-zero on any failure.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "packaging" / "tinyllama.spec"
EXPECTED_STDERR = [
    re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (DEBUG|INFO) "),  # our own log lines
    re.compile(r"^This plugin does not support propagateSizeHints\(\)$"),  # Qt's offscreen platform
]


class SmokeTestError(Exception):
    """The bundle did not behave; the message says which step and shows its output."""


def pyproject_version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def build(dist: Path, work: Path) -> Path:
    """Build the release artifacts, then run PyInstaller; returns the bundle's folder (the one
    holding the executable)."""
    started = time.monotonic()
    subprocess.run([sys.executable, str(ROOT / "packaging" / "build_artifacts.py"), "--out", str(work / "artifacts")],
                   cwd=ROOT, check=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "PyInstaller",
            "--noconfirm",
            "--clean",
            "--log-level",
            "WARN",
            "--distpath",
            str(dist),
            "--workpath",
            str(work),
            str(SPEC),
        ],
        cwd=ROOT,
        check=True,
        env={**os.environ, "TINYLLAMA_BUILD_ARTIFACTS": str(work / "artifacts")},
    )
    print(f"built in {time.monotonic() - started:.0f} s")
    return dist / "tinyllama"


def executable(bundle: Path) -> Path:
    return bundle / ("tinyllama.exe" if sys.platform == "win32" else "tinyllama")


def unexpected(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and not any(p.search(line) for p in EXPECTED_STDERR)]


def check_run(step: str, proc: subprocess.CompletedProcess[str]) -> None:
    bad = unexpected(proc.stderr)
    if proc.returncode != 0 or bad:
        raise SmokeTestError(
            f"{step}: exit code {proc.returncode}, unexpected stderr:\n  "
            + "\n  ".join(bad or ["(none)"])
            + f"\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )


def smoke_env(home: Path) -> dict[str, str]:
    """The environment for the bundle: offscreen Qt, and every per-user folder under `home`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "XDG_"))}
    env.update(
        QT_QPA_PLATFORM="offscreen",
        HOME=str(home),
        USERPROFILE=str(home),
        APPDATA=str(home / "AppData" / "Roaming"),
        LOCALAPPDATA=str(home / "AppData" / "Local"),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_STATE_HOME=str(home / ".local" / "state"),
        XDG_CACHE_HOME=str(home / ".cache"),
        # The Local profile's background service is found through here; the smoke test
        # stops the one the app starts, so it leaves nothing running.
        XDG_RUNTIME_DIR=str(private(home / "run")),
    )
    return env


def private(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def smoke_version(exe: Path, env: dict[str, str]) -> None:
    proc = subprocess.run([str(exe), "--version"], env=env, capture_output=True, text=True, timeout=60)
    check_run("tinyllama --version", proc)
    if proc.stdout.strip() != f"tinyllama {pyproject_version()}":
        raise SmokeTestError(f"tinyllama --version printed {proc.stdout.strip()!r}, not {pyproject_version()}")
    print(f"  ok  {proc.stdout.strip()}")


def smoke_window(exe: Path, env: dict[str, str], home: Path) -> None:
    started = time.monotonic()
    proc = subprocess.run(
        [str(exe)], env={**env, "TINYLLAMA_SMOKE_TEST": "1"}, capture_output=True, text=True, timeout=120
    )
    try:
        check_run("the app (offscreen, TINYLLAMA_SMOKE_TEST=1)", proc)
    finally:
        service = stop_background_service(home)
    logs = [p for p in home.rglob("tinyllama.log")]
    if not logs:
        raise SmokeTestError(f"the app wrote no log file under {home}")
    print(f"  ok  main window shown, connected to the background service (pid {service}) and closed in "
          f"{time.monotonic() - started:.1f} s; log: {logs[0].relative_to(home)}")


def stop_background_service(home: Path) -> int:
    """Stop the Local profile's service that the app started from the bundle (it outlives
    the window on purpose) and check that it goes, with its children, when asked."""
    from backend.entrypoints.local_service import DISCOVERY_NAME

    found = list(home.rglob(DISCOVERY_NAME))
    if not found:
        raise SmokeTestError(f"the app started no background service (no {DISCOVERY_NAME} under {home})")
    pid = int(json.loads(found[0].read_text())["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while pid_alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            raise SmokeTestError(f"the background service (pid {pid}) did not stop within 30 s of SIGTERM")
        time.sleep(0.1)  # not our child: nothing to wait() on
    if found[0].exists():
        raise SmokeTestError("the background service stopped but left its discovery file behind")
    return pid


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def smoke_local(exe: Path, env: dict[str, str], engine: tuple[str, ...] = ("--engine", "echo")) -> None:
    """`tinyllama local` from the bundle answers a prompt through its own worker process (and,
    for llamacpp, the engine process the bundle runs as `tinyllama llamacpp-server`)."""
    proc = subprocess.Popen(
        [str(exe), "local", "--port", "0", *engine, "--idle-timeout", "60"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    stdout = []
    try:
        assert proc.stdout is not None
        url = token = None
        deadline = time.monotonic() + 60
        while (url is None or token is None) and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            stdout.append(line)
            if m := re.search(r"local API on (http://\S+)", line):
                url = m.group(1)
            if m := re.search(r"Bearer token: (\S+)", line):
                token = m.group(1)
        if url is None or token is None:
            raise SmokeTestError("tinyllama local did not say where it listens:\n" + "".join(stdout))
        text = ask(url, token, "smoke test of the bundle")
        if engine[1] == "echo" and "smoke test of the bundle" not in text:
            raise SmokeTestError(f"the echo worker answered {text!r}")
        if not text.strip():  # a random model's words, but words
            raise SmokeTestError(f"the {engine[1]} engine answered nothing")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
    check_run(f"tinyllama local {' '.join(engine)}",
              subprocess.CompletedProcess(proc.args, proc.returncode, "".join(stdout) + out, err))
    print(f"  ok  tinyllama local {engine[1]} answered a prompt through the bundle's worker, and stopped")


def smoke_llamacpp(exe: Path, env: dict[str, str], home: Path) -> None:
    """The bundle's llama.cpp engine answers, with a tiny random model written here (the
    Local profile's real engine: xllamacpp's library and libgomp must be in the bundle)."""
    sys.path.insert(0, str(ROOT))
    try:
        from tests.fixtures.tiny_gguf import write_llama_gguf
    except ImportError as exc:
        raise SmokeTestError(f"the llamacpp smoke test needs the test extra ({exc}): pip install -e '.[test]'") from exc
    model = write_llama_gguf(home / "tiny-llama.gguf", context=2048)  # room for the default 512 tokens
    smoke_local(exe, env, ("--engine", "llamacpp", "--model", str(model)))


def smoke_deploy(exe: Path, env: dict[str, str], bundle: Path) -> None:
    """`tinyllama deploy` from the bundle creates the MVP and the full stack in moto's server,
    and the router function runs the bundled zip."""
    sys.path.insert(0, str(ROOT))
    try:
        from moto.server import ThreadedMotoServer

        from tests.fixtures.moto_templates import for_moto
        from tests.infra.conftest import INFRA, load_template
    except ImportError as exc:
        raise SmokeTestError(f"the deploy smoke test needs the test extra ({exc}): pip install -e '.[test]'") from exc
    import logging

    import boto3

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request
    manifest = json.loads((bundle / "_internal" / "artifacts" / "manifest.json").read_text())
    expected = base64.b64encode(bytes.fromhex(manifest["files"]["router.zip"]["sha256"])).decode()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        _host, port = server.get_host_and_port()
        url = f"http://localhost:{port}"  # moto reads a TemplateURL on localhost path-style
        home = Path(env["HOME"])
        aws = {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
               "AWS_CONFIG_FILE": str(home / "no-aws"), "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws")}
        client = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        ssm = boto3.client("ssm", region_name="us-east-1", endpoint_url=url, **client)
        ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=url, **client)
        ssm.put_parameter(Name="/smoke/worker-ami", Value=ec2.describe_images()["Images"][0]["ImageId"],
                          Type="String", DataType="aws:ec2:image", Overwrite=True)
        runs = {
            "mvp": ({"AlertEmail": "smoke@example.com", "SourceRepositoryUrl": "https://github.com/example/t"},
                    "tinyllama-router"),
            "stack": ({"AlertEmail": "smoke@example.com", "ImageParameter": "/smoke/worker-ami"},
                      "tinyllama-router-v2"),
        }
        lam = boto3.client("lambda", region_name="us-east-1", endpoint_url=url, **client)
        for template_name, (parameters, function) in runs.items():
            template, _dropped = for_moto(load_template(INFRA / f"{template_name}.yaml"), parameters)
            for key, value in parameters.items():  # moto resolves an SSM-typed parameter's Default only
                if template["Parameters"][key]["Type"].startswith("AWS::SSM::Parameter::Value"):
                    template["Parameters"][key]["Default"] = value
            template_file = home / f"{template_name}-for-moto.json"
            template_file.write_text(json.dumps(template))
            cmd = [str(exe), "deploy", "--stack-name", f"smoke-{template_name}", "--template", template_name,
                   "--template-file", str(template_file), "--direct", "--yes", "--poll-interval", "0"]
            cmd += [arg for k, v in parameters.items() for arg in ("-p", f"{k}={v}")]
            proc = subprocess.run(cmd, env={**env, **aws}, capture_output=True, text=True, timeout=300)
            check_run(f"tinyllama deploy --template {template_name}", proc)
            got = lam.get_function(FunctionName=function)["Configuration"]["CodeSha256"]
            if got != expected:
                raise SmokeTestError(f"{function}'s code is {got}, not the bundled router zip ({expected})")
            print(f"  ok  tinyllama deploy --template {template_name}: {function} runs the bundled router zip")
    finally:
        server.stop()


def ask(url: str, token: str, content: str, timeout_s: float = 60.0) -> str:
    def call(method: str, path: str, body: dict[str, object] | None = None) -> dict[str, object]:
        request = urllib.request.Request(
            url + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return dict(json.load(response))

    rid = call("POST", "/prompts", {"messages": [{"role": "user", "content": content}]})["request_id"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = call("GET", f"/prompts/{rid}")
        if state["status"] in ("done", "failed", "cancelled", "expired"):
            if state["status"] != "done":
                raise SmokeTestError(f"the prompt ended {state['status']}: {state}")
            return str(state.get("text") or "")
        time.sleep(0.2)
    raise SmokeTestError(f"no answer within {timeout_s:.0f} s")


def smoke_test(bundle: Path, skip_local: bool = False, skip_deploy: bool = False) -> None:
    """Start the built bundle five ways; raises SmokeTestError when one misbehaves."""
    exe = executable(bundle)
    print(f"smoke test of {exe}")
    with tempfile.TemporaryDirectory(prefix="tinyllama-smoke-") as tmp:
        home = Path(tmp)
        env = smoke_env(home)
        smoke_version(exe, env)
        smoke_window(exe, env, home)
        if skip_local or sys.platform == "win32":  # the local stack needs POSIX process groups
            print("  --  tinyllama local skipped")
        elif shutil.which("redis-server", path=env.get("PATH")) is None:
            raise SmokeTestError(
                "redis-server is not on the PATH, so the Local profile cannot be "
                "tested (install it, or pass --skip-local)"
            )
        else:
            smoke_local(exe, env)
            smoke_llamacpp(exe, env, home)
        if skip_deploy:
            print("  --  tinyllama deploy skipped")
        else:
            smoke_deploy(exe, env, bundle)
    print("smoke test passed")


def sizes(bundle: Path, count: int = 15) -> tuple[int, list[tuple[int, str]]]:
    """The bundle's size and its `count` largest parts.

    A part is a top-level file or folder of the bundle; one holding more than a quarter
    of the whole is split into its own parts, so the list says what is big, not just "Qt".
    """

    def size(path: Path) -> int:
        if path.is_symlink():
            return 0
        if path.is_file():
            return path.stat().st_size
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())

    total = size(bundle)
    parts: list[tuple[int, str]] = []
    todo = [bundle]
    while todo:
        for child in todo.pop().iterdir():
            n = size(child)
            if child.is_dir() and not child.is_symlink() and n > total / 4:
                todo.append(child)
            else:
                parts.append((n, child.relative_to(bundle).as_posix() + ("/" if child.is_dir() else "")))
    return total, sorted(parts, reverse=True)[:count]


def report(bundle: Path) -> None:
    total, largest = sizes(bundle)
    print(f"bundle: {bundle}  {total / 1e6:.1f} MB")
    for n, name in largest:
        print(f"  {n / 1e6:7.1f} MB  {name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="where the bundle goes (default: dist/)")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "pyinstaller", help="PyInstaller's work dir")
    parser.add_argument("--skip-build", action="store_true", help="smoke-test the bundle already in --dist")
    parser.add_argument("--skip-local", action="store_true", help="do not run `tinyllama local` (no redis-server)")
    parser.add_argument("--skip-deploy", action="store_true", help="do not deploy to moto (no test extra)")
    args = parser.parse_args(argv)

    bundle = args.dist / "tinyllama" if args.skip_build else build(args.dist, args.work)
    report(bundle)
    try:
        smoke_test(bundle, skip_local=args.skip_local, skip_deploy=args.skip_deploy)
    except (SmokeTestError, subprocess.TimeoutExpired) as exc:
        print(f"SMOKE TEST FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
