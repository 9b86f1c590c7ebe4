"""What reaches the processes the local target starts: only the release's checked env,
its declared secrets and a minimal base, never the worker's own environment. Real
processes throughout; the attacks are the ones an attack run found (a planted
sitecustomize.py on PYTHONPATH, an LD_PRELOAD library, secret:// reading any worker
variable)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.errors import PermanentTargetError
from pipeline.gallery.flags import FLAGS_FILE_VARIABLE
from pipeline.gallery.scrape import SCRAPE_DIR_VARIABLE, SERVICE_VARIABLE
from pipeline.local.env import launch_detached, processes_marked
from pipeline.models import Slot
from pipeline.targets.local import LocalTarget
from tests.helpers.local import environ_of, is_alive, local_environment, wait_until

FLAGS_AND_SCRAPING = {FLAGS_FILE_VARIABLE, SCRAPE_DIR_VARIABLE, SERVICE_VARIABLE}
"""Paths into the local environment and the service's name, never a worker secret."""

WORKER_SECRETS = {
    "TEMPORAL_ADDRESS": "temporal.internal.example:7233",
    "TEMPORAL_API_KEY": "tk-worker-credential-4e1c",
    "PIPELINE_PROMETHEUS_TOKEN": "prom-worker-credential-91aa",
    "SLACK_URL": "https://hooks.slack.com/services/T0/B0/worker-credential-77",
}


@pytest.fixture
def worker_environment(monkeypatch) -> None:
    """The worker's own credentials, as a real worker holds them."""
    for name, value in WORKER_SECRETS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="module")
async def target(tmp_path_factory):
    env = local_environment(tmp_path_factory.mktemp("local-env"))
    yield LocalTarget(env, ready_timeout_seconds=20)
    await env.stop_all()


@pytest.fixture
def planted_sitecustomize(tmp_path) -> tuple[Path, Path]:
    """A folder whose sitecustomize.py, if any Python starts with it on PYTHONPATH,
    creates the marker file."""
    folder, marker = tmp_path / "planted", tmp_path / "sitecustomize-ran"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    return folder, marker


@pytest.fixture
def planted_library(tmp_path) -> tuple[Path, Path]:
    """A shared library whose constructor creates the marker file in any process that preloads it."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build the LD_PRELOAD library")
    source, library, marker = tmp_path / "planted.c", tmp_path / "planted.so", tmp_path / "preload-ran"
    source.write_text(
        "#include <stdio.h>\n"
        f'__attribute__((constructor)) static void planted(void) {{ fclose(fopen("{marker}", "w")); }}\n'
    )
    subprocess.run([compiler, "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    return library, marker


def slot_pid(target: LocalTarget, service: str, slot: Slot) -> int:
    return json.loads((target.env.services_dir / f"{service}.json").read_text())["slots"][slot]["pid"]


def nothing_started(target: LocalTarget, service: str) -> bool:
    return not processes_marked(f"{target.env.instance_prefix}{service}.")


async def test_pythonpath_with_a_planted_sitecustomize_is_refused_and_runs_nothing(target, planted_sitecustomize):
    folder, marker = planted_sitecustomize
    with pytest.raises(PermanentTargetError, match="PYTHONPATH may not be set by a release"):
        await target.deploy("planted", Slot.STAGING, "1.0", {"PYTHONPATH": str(folder)})
    assert not marker.exists()
    assert nothing_started(target, "planted")


async def test_ld_preload_is_refused_and_runs_nothing(target, planted_library):
    library, marker = planted_library
    with pytest.raises(PermanentTargetError, match="LD_PRELOAD may not be set by a release"):
        await target.deploy("preloaded", Slot.STAGING, "1.0", {"LD_PRELOAD": str(library)})
    assert not marker.exists()
    assert nothing_started(target, "preloaded")


@pytest.mark.parametrize("env", [{"BIG": "x" * 1024 * 1024}, {"NUL": "a\0b"}, {"HOME": "/tmp"}])
async def test_an_env_the_request_model_would_refuse_fails_at_once_and_for_good(target, env):
    """A request recorded before validation tightened must not get through either."""
    with pytest.raises(PermanentTargetError, match=f"refuses the release's env: {next(iter(env))}"):
        await target.deploy("unchecked", Slot.STAGING, "1.0", env)
    assert nothing_started(target, "unchecked")


async def test_a_secret_reference_reads_only_declared_worker_secrets(target, worker_environment):
    with pytest.raises(PermanentTargetError) as refused:
        await target.deploy("undeclared", Slot.STAGING, "1.0", {"X": "secret://TEMPORAL_ADDRESS"})
    assert str(refused.value) == (
        "X refers to secret TEMPORAL_ADDRESS, which this worker does not declare (PIPELINE_SECRET_TEMPORAL_ADDRESS)"
    )
    assert WORKER_SECRETS["TEMPORAL_ADDRESS"] not in str(refused.value)
    assert nothing_started(target, "undeclared")


async def test_the_service_gets_its_env_its_declared_secret_and_a_minimal_base_only(target, worker_environment, monkeypatch):
    monkeypatch.setenv("PIPELINE_SECRET_DB_PASSWORD", "db-secret-5f2b")
    release_env = {"DB_PASSWORD": "secret://DB_PASSWORD", "FEATURE_X": "on"}
    await target.deploy("minimal", Slot.STAGING, "1.0", release_env)
    await target.wait_ready("minimal", Slot.STAGING, "1.0", progress=lambda message: None)

    pid = slot_pid(target, "minimal", Slot.STAGING)
    environ = environ_of(pid)
    assert environ["DB_PASSWORD"] == "db-secret-5f2b" and environ["FEATURE_X"] == "on"
    base = {name for name in environ if name not in release_env}
    assert base <= {"PATH", "LANG", "TZ", *FLAGS_AND_SCRAPING} | {name for name in environ if name.startswith("LC_")}
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    assert not [name for name, value in WORKER_SECRETS.items() if value.encode() in raw]
    assert "db-secret-5f2b" not in (target.env.services_dir / "minimal.json").read_text()
    await target.stop("minimal", Slot.STAGING)


async def test_the_launcher_never_sees_the_service_environment(tmp_path, planted_sitecustomize):
    """The service's environment goes to the service only: the `python -c` launcher
    runs with the worker's own, so a PYTHONPATH meant for the service cannot run code
    in it. The service here is `env`, which prints what it got."""
    folder, marker = planted_sitecustomize
    service_env = {"PYTHONPATH": str(folder), "ONLY": "this"}
    log_path = tmp_path / "env.log"
    pid = await launch_detached([shutil.which("env")], service_env, log_path)
    await wait_until(lambda: not is_alive(pid))
    assert not marker.exists()
    assert log_path.read_text().splitlines() == [f"PYTHONPATH={folder}", "ONLY=this"]

