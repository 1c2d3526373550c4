"""compose.yaml runs the broker as `LEDGER_KAFKA_SASL=1 scripts/kafka.sh start` and
`scripts/kafka.sh acls` do (the setup tests/integration/test_kafka_acls.py runs
against a real broker): same listeners and mechanism, same authorizer, the same
ACLs — only the service's user writes the topic — and every ledger container logs
in with a user the broker knows. Docker is not available where these tests run, so
this reads both files instead of starting the stack (README, "With Docker")."""

from __future__ import annotations

import copy
import re
import shlex
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "kafka.sh"
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
LEDGER_IMAGE_SERVICES = ("projector", "retrainer", "notifier", "ledger", "cli")


def interpolate(value):
    """Compose's ``${VAR:-default}`` with nothing set: the defaults; ``$$`` is ``$``."""
    if isinstance(value, str):
        value = re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: m[2], value)
        return value.replace("$$", "$")
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    return value


def image_key(env_name: str) -> str:
    """apache/kafka's docker/resources/utility ConvertKey: ``_`` → ``.``,
    ``__`` → ``_``, ``___`` → ``-``, lower case."""
    single = re.sub(r"(?<=[^_])_(?=[^_])", ".", env_name)
    return single.replace("___", "-").replace("__", "_").lower()


def broker_properties(compose: dict) -> dict[str, str]:
    env = interpolate(compose["services"]["kafka"]["environment"])
    return {image_key(k[len("KAFKA_"):]): str(v) for k, v in env.items() if k.startswith("KAFKA_")}


def script_sasl_properties() -> dict[str, str]:
    """What scripts/kafka.sh writes in SASL mode, by running its own function."""
    text = SCRIPT.read_text()
    function = re.search(r"^sasl_properties\(\) \{\n.*?^\}\n", text, re.M | re.S)[0]
    defaults = "\n".join(line for line in text.splitlines() if re.match(r"^(HOST|PORT|CPORT|ADMIN_PASSWORD|USERS)=", line))
    out = subprocess.run(
        ["bash", "-c", f"set -euo pipefail\ndie() {{ echo \"$*\" >&2; exit 1; }}\n{defaults}\n{function}\nsasl_properties"],
        capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"},
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def jaas_users(jaas: str) -> tuple[str, dict[str, str]]:
    """(the login's username, user → password) of a PlainLoginModule config."""
    pairs = dict(re.findall(r'(\w+)="([^"]*)"', jaas))
    return pairs["username"], {k[len("user_"):]: v for k, v in pairs.items() if k.startswith("user_")}


def listeners(props: dict) -> dict[str, tuple[str, str]]:
    """listener name → (security protocol, bind host)."""
    protocols = dict(p.split(":") for p in props["listener.security.protocol.map"].split(","))
    found = {}
    for item in props["listeners"].split(","):
        name, _, address = item.partition("://")
        found[name] = (protocols[name], address.rpartition(":")[0])
    return found


def script_acls() -> set[tuple]:
    """The ACLs `kafka.sh acls` adds with its default users and topic."""
    text = SCRIPT.read_text()
    body = re.search(r"^cmd_acls\(\) \{\n(.*?)^\}\n", text, re.M | re.S)[1]
    values = {"$WRITER": "ledger", "$ACL_TOPIC": "ledger.lifecycle", "$reader": "reader"}
    found = set()
    for line in re.sub(r"\\\n\s*", " ", body).splitlines():
        line = line.strip()
        if line.startswith("acl --"):
            for name, value in values.items():
                line = line.replace(name, value)
            found.add(_acl(shlex.split(line)[1:]))
    return found


def compose_acls(compose: dict) -> set[tuple]:
    script = interpolate(compose["services"]["kafka-acls"]["command"])[0]
    return {_acl(shlex.split(line)[1:]) for line in script.splitlines() if line.strip().startswith("acl --")}


def _acl(args: list[str]) -> tuple:
    """(principal, operations, resource kind, resource name, pattern type)."""
    principal, operations, resource, pattern = None, set(), None, "literal"
    i = 0
    while i < len(args):
        flag = args[i]
        if flag == "--allow-principal":
            principal = args[i + 1]
        elif flag == "--operation":
            operations.add(args[i + 1])
        elif flag == "--resource-pattern-type":
            pattern = args[i + 1]
        elif flag == "--cluster":
            resource = ("cluster", "kafka-cluster")
            i += 1
            continue
        elif flag in ("--topic", "--group", "--transactional-id"):
            resource = (flag[2:], args[i + 1])
        i += 2
    return principal, frozenset(operations), *resource, pattern


def log_login(service: dict) -> tuple[str, str, str]:
    """(security protocol, user, password) of a container's LEDGER_LOG."""
    url = interpolate(service["environment"])["LEDGER_LOG"]
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    return query.get("security_protocol", "PLAINTEXT"), query.get("sasl_plain_username"), query.get("sasl_plain_password")


WRITES = {"Write", "Create", "IdempotentWrite", "Alter", "Delete", "All"}


def problems(compose: dict) -> list[str]:
    """How compose.yaml differs from kafka.sh's SASL mode, or [] when it does not."""
    found = []
    script, broker = script_sasl_properties(), broker_properties(compose)
    for key in ("sasl.enabled.mechanisms", "sasl.mechanism.inter.broker.protocol", "authorizer.class.name",
                "super.users", "allow.everyone.if.no.acl.found"):
        if broker.get(key) != script[key]:
            found.append(f"{key}: compose {broker.get(key)!r}, kafka.sh {script[key]!r}")
    ours, theirs = listeners(broker), listeners(script)
    if ours.get("CONTROLLER") != ("PLAINTEXT", "127.0.0.1") or theirs["CONTROLLER"][0] != "PLAINTEXT":
        found.append(f"the controller listener is {ours.get('CONTROLLER')}, not PLAINTEXT on loopback as in kafka.sh")
    clients = {name: protocol for name, (protocol, _) in ours.items() if name != "CONTROLLER"}
    if set(clients.values()) != {p for n, (p, _) in theirs.items() if n != "CONTROLLER"}:
        found.append(f"client listeners {clients} are not all SASL_PLAINTEXT as in kafka.sh")
    if ours.get(broker.get("inter.broker.listener.name"), ("",))[0] != "SASL_PLAINTEXT":
        found.append("the inter-broker listener does not log in")
    _, script_users = jaas_users(script[f"listener.name.{script['inter.broker.listener.name'].lower()}.plain.sasl.jaas.config"])
    users = None
    for name in clients:
        jaas = broker.get(f"listener.name.{name.lower()}.plain.sasl.jaas.config")
        if jaas is None:
            found.append(f"listener {name} has no PLAIN users")
            continue
        login, users = jaas_users(jaas)
        if login != "admin" or users != script_users:
            found.append(f"listener {name}: login {login!r}, users {users} (kafka.sh: admin, {script_users})")
    acls = compose_acls(compose)
    if acls != script_acls():
        found.append(f"ACLs differ from kafka.sh acls: compose only {acls - script_acls()}, kafka.sh only {script_acls() - acls}")
    writers = {principal for principal, operations, *_ in acls if operations & WRITES}
    if writers != {"User:ledger"}:
        found.append(f"principals that may write: {sorted(writers)}, not only the service's User:ledger")
    services = compose["services"]
    for name in LEDGER_IMAGE_SERVICES:
        protocol, user, password = log_login(services[name])
        expected = "ledger" if name == "ledger" else "reader"
        if protocol != "SASL_PLAINTEXT" or user != expected:
            found.append(f"{name} logs in to the broker as {user!r} over {protocol}, not as {expected!r}")
        elif users is not None and users.get(user) != password:
            found.append(f"{name}'s password for {user!r} is not the broker's")
        if name != "ledger" and interpolate(services[name]["environment"]).get("LEDGER_URL") != "http://ledger:8080":
            found.append(f"{name} does not record through the service (LEDGER_URL)")
        if "kafka-acls" not in services[name].get("depends_on", {}):
            found.append(f"{name} may start before the ACLs are set")
    return found


def test_compose_runs_the_broker_and_acls_as_kafka_sh_does():
    assert problems(COMPOSE) == []


def test_the_service_has_the_writer_credentials_and_the_others_only_read():
    services = COMPOSE["services"]
    assert log_login(services["ledger"])[1:] == ("ledger", "ledger-secret")
    assert {log_login(services[n])[1] for n in LEDGER_IMAGE_SERVICES if n != "ledger"} == {"reader"}
    assert "--principals" in services["ledger"]["command"] and services["ledger"]["command"][0] == "serve"


def _broken(change) -> dict:
    broken = copy.deepcopy(COMPOSE)
    change(broken)
    return broken


def _grant_reader_write(c):
    acls = c["services"]["kafka-acls"]
    acls["command"] = [acls["command"][0] + "acl --allow-principal User:reader --operation Write --topic ledger.lifecycle\n"]


@pytest.mark.parametrize(
    "change, why",
    [
        (_grant_reader_write, "not only the service's User:ledger"),
        (lambda c: c["services"]["kafka"]["environment"].update(KAFKA_SASL_ENABLED_MECHANISMS="SCRAM-SHA-256"), "sasl.enabled.mechanisms"),
        (lambda c: c["services"]["kafka"]["environment"].update(KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND="true"), "allow.everyone"),
        (lambda c: c["services"]["kafka"]["environment"].update(
            KAFKA_LISTENER_SECURITY_PROTOCOL_MAP="CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,HOST:PLAINTEXT"), "not all SASL_PLAINTEXT"),
        (lambda c: c["services"]["projector"].update(environment={**c["x-ledger-env"], "LEDGER_LOG": c["services"]["ledger"]["environment"]["LEDGER_LOG"]}), "projector logs in"),
        (lambda c: c["services"]["ledger"]["environment"].update(LEDGER_LOG=c["x-ledger-env"]["LEDGER_LOG"].replace("reader-secret", "guess")), "ledger logs in"),
        (lambda c: c["services"]["kafka"]["environment"].pop("KAFKA_LISTENER_NAME_HOST_PLAIN_SASL_JAAS_CONFIG"), "listener HOST has no PLAIN users"),
    ],
)
def test_the_consistency_check_fails_when_compose_drifts_from_kafka_sh(change, why):
    found = problems(_broken(change))
    assert any(why in p for p in found), found
