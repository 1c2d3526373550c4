"""compose.yaml: valid by the Compose specification, and every service runs a
command the CLI really has, configured by the variables the CLI reads."""

from __future__ import annotations

import json
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import yaml

from consumers.runner import names as consumer_names
from ledger.cli import main

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_file_is_valid_by_the_compose_specification():
    schema = json.loads(
        (resources.files("check_jsonschema") / "builtin_schemas" / "vendor" / "compose-spec.json").read_text()
    )
    jsonschema.validate(COMPOSE, schema)


def test_compose_file_refused_when_broken():
    """Guard: the schema check above can fail."""
    schema = json.loads(
        (resources.files("check_jsonschema") / "builtin_schemas" / "vendor" / "compose-spec.json").read_text()
    )
    broken = {**COMPOSE, "services": {"kafka": {**COMPOSE["services"]["kafka"], "ports": "not-a-list", "restart": 3}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


@pytest.mark.parametrize("service", ["projector", "retrainer", "notifier", "ledger"])
def test_ledger_services_run_real_commands_with_the_cli_configuration(service):
    spec = COMPOSE["services"][service]
    command = spec["command"]
    assert command[0] in main.commands, f"{service} runs `ledger {command[0]}`, which does not exist"
    # Every option of the command line parses (a misspelt --follow would fail here).
    parsed = main.commands[command[0]].make_context(command[0], list(command[1:])).params
    if command[0] == "consume":
        assert parsed["name"] in consumer_names()
    env = spec["environment"]
    assert env["LEDGER_LOG"].startswith("kafka://kafka:9092/")
    assert env["LEDGER_DB"].startswith("postgresql+psycopg://")
    assert spec["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_kafka_is_the_official_image_in_kraft_mode():
    kafka = COMPOSE["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:4.")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker client")
def test_docker_compose_config_accepts_it_when_docker_is_present():
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("docker has no compose plugin here; the schema test above stands in")
    result = subprocess.run(["docker", "compose", "-f", str(ROOT / "compose.yaml"), "config", "-q"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_kafka_keeps_the_log_in_its_volume():
    """The ledger's events live on the broker: they must survive `docker compose down`
    and `up`. The image writes to /tmp/kraft-combined-logs unless told otherwise,
    which is inside the container, not in the volume."""
    kafka = COMPOSE["services"]["kafka"]
    [data] = [v.split(":")[1] for v in kafka["volumes"] if v.startswith("kafka-data:")]
    assert kafka["environment"]["KAFKA_LOG_DIRS"] == data
    # KRaft storage is formatted once, with a fixed cluster id, so a restart finds its own.
    assert kafka["environment"]["CLUSTER_ID"]
