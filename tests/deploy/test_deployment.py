"""compose.yaml, the Dockerfile and the dev container, checked without a Docker engine.

Each test reads the files the way Docker would and checks them against the code: settings
names against ``Settings``, commands against the typer CLI, mounts against the repository.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import compose_files as cf
import pytest
import typer
import yaml
from pydantic import BaseModel

from app.api import auth
from app.backends import require
from app.config import Settings

ROOT = cf.ROOT
DOCKERFILE = ROOT / "Dockerfile"
DEVCONTAINER = ROOT / ".devcontainer" / "devcontainer.json"
RIVERGUARD = Path(sys.executable).with_name("riverguard")
STACK = {
    "kafka", "redis", "postgres", "prometheus", "grafana", "riverguard", "learner", "simulator"
}  # fmt: skip
# Hosts of package and image registries: no file of the deployment names one (images come
# from the engine's default registry, Python packages from the locks via the usual clients).
REGISTRY_HOSTS = re.compile(
    r"pypi\.org|pythonhosted|ghcr\.io|docker\.io|quay\.io|gcr\.io|registry\.|index-url"
)
DEPLOY_FILES = [
    DOCKERFILE,
    ROOT / ".dockerignore",
    cf.COMPOSE,
    cf.ENV_EXAMPLE,
    cf.DEV_OVERRIDE,
    DEVCONTAINER,
    ROOT / ".devcontainer" / "Dockerfile",
    *sorted((ROOT / "deploy").rglob("*.*")),
]


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    return cf.services()


@pytest.fixture(scope="module")
def dev_stack() -> dict[str, Any]:
    return cf.services(dev=True)


def test_compose_has_the_whole_stack(stack: dict[str, Any]) -> None:
    assert set(stack) == STACK
    assert stack["simulator"]["profiles"] == ["sim"]
    assert all("profiles" not in spec for name, spec in stack.items() if name != "simulator")


@pytest.mark.parametrize("dev", [False, True], ids=["compose", "devcontainer"])
def test_every_service_has_a_healthcheck_and_a_pinned_image(dev: bool) -> None:
    for name, spec in cf.services(dev=dev).items():
        if dev and name == "riverguard":
            continue  # moved to a profile by the override, defined by compose.yaml
        check = spec.get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        image = spec["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest" and "/" not in tag, f"{name}: {image}"


def test_backends_run_as_specified(stack: dict[str, Any]) -> None:
    kafka = cf.environment(stack["kafka"])
    assert stack["kafka"]["image"].startswith("apache/kafka:")
    assert set(kafka["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in key for key in kafka)
    redis_command = " ".join(stack["redis"]["command"])
    assert "--appendonly yes" in redis_command
    volumes = {
        "kafka": "/var/lib/kafka/data",
        "redis": "/data",
        "postgres": "/var/lib/postgresql/data",
        "prometheus": "/prometheus",
        "grafana": "/var/lib/grafana",
    }
    declared = set(cf.load(cf.COMPOSE)["volumes"])
    for name, target in volumes.items():
        mounts = dict(_split_mount(m)[::-1] for m in stack[name]["volumes"])
        assert mounts.get(target) in declared, f"{name} keeps {target} in no named volume"


def _split_mount(mount: str) -> tuple[str, str]:
    source, target, *_ = mount.split(":")
    return source, target


def _settings_field(name: str) -> bool:
    """Whether RIVERGUARD_A__B names a (nested) field of Settings."""
    model: type[BaseModel] = Settings
    parts = name.removeprefix("RIVERGUARD_").lower().split("__")
    for depth, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        annotation = field.annotation
        if depth < len(parts) - 1:
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                return False
            model = annotation
    return True


def test_every_riverguard_variable_is_a_setting(dev_stack: dict[str, Any]) -> None:
    assert _settings_field("RIVERGUARD_SCORING__DECLINE_THRESHOLD")
    assert not _settings_field("RIVERGUARD_SCORING__NO_SUCH_KNOB")
    names = {
        key
        for spec in dev_stack.values()
        for key in cf.environment(spec)
        if key.startswith("RIVERGUARD_")
    }
    assert "RIVERGUARD_DATABASE_URL" in names
    assert {name for name in names if not _settings_field(name)} == set()


@pytest.mark.parametrize("service", ["riverguard", "dev"])
def test_the_service_gets_working_settings(
    service: str, dev_stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in list(os.environ):
        if key.startswith("RIVERGUARD_"):
            monkeypatch.delenv(key)
    for key, value in cf.environment(dev_stack[service]).items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    redis_url, database_url = require(settings)
    assert settings.api_keys is not None
    assert auth.parse_keys(settings.api_keys.get_secret_value())
    hosts = {
        urlsplit(redis_url).hostname,
        urlsplit(database_url).hostname,
        str(settings.kafka_bootstrap).partition(":")[0],
    }
    assert hosts == {"redis", "postgres", "kafka"}
    assert urlsplit(redis_url).password == cf.env_example()["REDIS_PASSWORD"]


def test_every_compose_variable_is_in_env_example() -> None:
    documented = cf.env_example()
    for path in (cf.COMPOSE, cf.DEV_OVERRIDE):
        missing = set(cf.variables(path.read_text())) - set(documented)
        assert missing == set(), f"{path.name} uses {missing} that .env.example lacks"


def test_secrets_are_required_not_defaulted() -> None:
    operators = cf.variables(cf.COMPOSE.read_text())
    for secret in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "RIVERGUARD_API_KEYS"):
        assert operators[secret] <= {None, ":?"}, f"{secret} must have no default"
    with pytest.raises(KeyError, match="REDIS_PASSWORD"):
        cf.services(env={})


@pytest.mark.parametrize("dev", [False, True], ids=["compose", "devcontainer"])
def test_mounted_and_built_paths_exist(dev: bool) -> None:
    for name, spec in cf.services(dev=dev).items():
        for mount in spec.get("volumes", []):
            source, _ = _split_mount(mount)
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
        build = spec.get("build")
        if isinstance(build, str):
            build = {"context": build}
        if build:
            context = ROOT / build["context"]
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name


def test_monitoring_config_names_the_compose_services(stack: dict[str, Any]) -> None:
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "riverguard")
    targets = dict(t.partition(":")[::2] for t in job["static_configs"][0]["targets"])
    assert set(targets) == {"riverguard", "learner"}  # every riverguard process is scraped
    assert all(host in stack for host in targets)
    assert any(p.endswith(f":{targets['riverguard']}") for p in stack["riverguard"]["ports"])
    assert cf.environment(stack["riverguard"])["RIVERGUARD_ROLE"] == "scorer"
    assert stack["learner"]["command"] == ["learner"]
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    source = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    assert urlsplit(source["datasources"][0]["url"]).hostname == "prometheus"
    providers = yaml.safe_load((provisioning / "dashboards" / "riverguard.yml").read_text())
    mounts = dict(_split_mount(m)[::-1] for m in stack["grafana"]["volumes"])
    dashboards = mounts[providers["providers"][0]["options"]["path"]]
    assert (ROOT / dashboards).resolve() == (ROOT / "deploy" / "grafana" / "dashboards")
    home = cf.environment(stack["grafana"])["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (ROOT / dashboards / Path(home).name).is_file()


def _click_options(command: str) -> set[str]:
    from simulator.cli import app as simulate_app

    group = typer.main.get_command(simulate_app)
    sub = group.commands[command]  # type: ignore[attr-defined]
    return {opt for param in sub.params for opt in [*param.opts, *param.secondary_opts]}


def test_simulator_command_uses_real_cli_flags(stack: dict[str, Any]) -> None:
    script = stack["simulator"]["command"][0]
    generate, _, replay = script.partition("&&")
    for part, command in ((generate, "generate"), (replay, "replay")):
        words = shlex.split(re.sub(r'"\$\(.*\)"', "START", part).replace("exec ", "", 1))
        assert words[:3] == ["riverguard", "simulate", command]
        flags = {w.split("=")[0] for w in words if w.startswith("--")}
        assert flags <= _click_options(command), flags - _click_options(command)
    assert "--to kafka --bootstrap kafka:9092" in replay


def test_simulator_generation_step_runs(stack: dict[str, Any], tmp_path: Path) -> None:
    env = {**cf.env_example(), "SIM_DAYS": "1", "SIM_CARDS": "30"}
    script = cf.services(env=env)["simulator"]["command"][0]
    generate = script.partition("&&")[0].replace("/tmp/stream.jsonl", str(tmp_path / "s.jsonl"))
    path = f"{RIVERGUARD.parent}{os.pathsep}{os.environ['PATH']}"
    done = subprocess.run(
        ["sh", "-c", generate], capture_output=True, text=True, timeout=120, env={"PATH": path}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    stamps = [datetime.fromisoformat(r["data"]["timestamp"]) for r in records]
    assert records and {r["kind"] for r in records} <= {"transaction", "label"}
    assert max(stamps) < datetime.now(UTC), "the simulated stream must lie in the past"


def _dockerfile_stages() -> list[list[tuple[str, str]]]:
    """(INSTRUCTION, arguments) per build stage, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        instruction, _, args = line.strip().partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instruction.upper(), args.strip()))
    return stages


def _build_stage() -> list[tuple[str, str]]:
    """The stage that installs the dependencies and the packages."""
    return next(s for s in _dockerfile_stages() if s[0][1].lower().endswith(" as build"))


def test_dockerfile_runtime_stage_runs_as_non_root() -> None:
    final = _dockerfile_stages()[-1]
    users = [args for instruction, args in final if instruction == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    entrypoint = [i for i, (instruction, _) in enumerate(final) if instruction == "ENTRYPOINT"]
    user_line = max(i for i, (instruction, _) in enumerate(final) if instruction == "USER")
    assert entrypoint and user_line < entrypoint[0]


def test_dockerfile_installs_the_lock_with_hashes_before_the_source() -> None:
    build = _build_stage()
    assert "python:3.11-slim-bookworm" in DOCKERFILE.read_text()
    runs = [
        i for i, (ins, args) in enumerate(build) if ins == "RUN" and "requirements.lock" in args
    ]
    assert runs and "--require-hashes" in build[runs[0]][1]
    copies = [(i, args) for i, (ins, args) in enumerate(build) if ins == "COPY"]
    first_source = min(i for i, args in copies if args.split()[0] in {"app", ".", "features"})
    assert runs[0] < first_source, "dependencies must be a layer of their own, before the source"


def test_dockerfile_ships_every_package() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    packages = re.search(r"include = \[([^\]]*)\]", pyproject)
    assert packages is not None
    names = {name.strip(' "*') for name in packages.group(1).split(",")}
    copied = {args.split()[0] for ins, args in _build_stage() if ins == "COPY"}
    assert names <= copied


def test_dockerfile_entrypoint_is_the_cli_serve_command() -> None:
    final = dict(_dockerfile_stages()[-1])
    assert json.loads(final["ENTRYPOINT"]) == ["riverguard"]
    assert json.loads(final["CMD"]) == ["serve"]
    assert "/healthz" in final["HEALTHCHECK"] and "urllib" in final["HEALTHCHECK"]
    assert "RIVERGUARD_HOST=0.0.0.0" in final["ENV"]
    assert "--workers" not in DOCKERFILE.read_text()
    done = subprocess.run(
        [str(RIVERGUARD), "serve", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_dockerignore_keeps_secrets_and_the_venv_out() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".venv", ".git"} <= set(ignored)


def test_devcontainer_uses_the_compose_stack(dev_stack: dict[str, Any]) -> None:
    config = json.loads(DEVCONTAINER.read_text())
    files = [(DEVCONTAINER.parent / f).resolve() for f in config["dockerComposeFile"]]
    assert files == [cf.COMPOSE, cf.DEV_OVERRIDE]
    assert config["service"] in dev_stack
    assert set(config["runServices"]) <= set(dev_stack)
    assert "make install" in config["postCreateCommand"]
    ports = {int(str(p).rpartition(":")[2]) for p in config["forwardPorts"]}
    assert ports == {8000, 3000, 9090}
    extensions = set(config["customizations"]["vscode"]["extensions"])
    assert {"ms-python.python", "charliermarsh.ruff"} <= extensions
    dev = dev_stack[config["service"]]
    assert ".:/workspaces/riverguard:cached" in dev["volumes"]
    assert "riverguard" in dev["networks"]["default"]["aliases"]


def test_no_deployment_file_names_a_registry_host() -> None:
    offenders = [p.name for p in DEPLOY_FILES if REGISTRY_HOSTS.search(p.read_text())]
    assert offenders == []
