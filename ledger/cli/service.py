"""``ledger serve`` and ``ledger principals``: click commands the CLI registers."""

from __future__ import annotations

import click

from ledger.cli.base import settings as cli_settings
from ledger.errors import InputError

PRINCIPALS_HELP = "The principals file (TOML): who may call the service, with which roles."


@click.command()
@click.option("--principals", "principals_file", envvar="LEDGER_PRINCIPALS", required=True, type=click.Path(dir_okay=False), help=PRINCIPALS_HELP)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), default=None, help="PEM certificate: serve HTTPS (with --tls-key).")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), default=None, help="PEM private key of --tls-cert.")
@click.option("--deadline", default=10.0, show_default=True, type=click.FloatRange(0.1, 300), help="Seconds within which every append is answered (else 503, outcome unknown).")
@click.option(
    "--advertise",
    "advertise_url",
    default=None,
    metavar="URL",
    help="This instance's URL as its peers reach it. On Kafka, instances that advertise share the partitions "
    "through a consumer group (one writer each) and forward requests to the owner.",
)
@click.option("--log-level", default="info", show_default=True, type=click.Choice(["critical", "error", "warning", "info", "debug"]))
@click.option("--access-log/--no-access-log", default=False, show_default=True, help="Log every request (uvicorn's access log; off: /metrics counts them, and a line per request costs CPU).")
@click.pass_context
def serve(ctx, principals_file, host, port, tls_cert, tls_key, deadline, advertise_url, log_level, access_log) -> None:
    """Run the ledger service: the one writer of the log, over authenticated HTTP.

    The log and the views are --log / --db of `ledger` (LEDGER_LOG, LEDGER_DB).
    Clients send `Authorization: Bearer TOKEN` (tokens from `ledger principals add`).
    Without --tls-cert the service speaks plain HTTP: keep it on loopback or behind
    a TLS-terminating proxy.

    \b
    Example:
      ledger principals add alice --role approve --role read --file principals.toml
      ledger --log kafka://127.0.0.1:19092/ledger.lifecycle serve --principals principals.toml --port 8080
      # two instances sharing the partitions, each forwarding to the other:
      ledger --log kafka://… serve --principals principals.toml --port 8081 --advertise http://10.0.0.1:8081
    """
    import uvicorn

    from ledger.service.app import Settings, create_app
    from ledger.service.principals import Principals

    import logging

    # The service's own messages (writer role taken or lost, partitions moving,
    # the log failing) go to stderr beside uvicorn's.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("ledger").addHandler(handler)
    logging.getLogger("ledger").setLevel(log_level.upper())
    if bool(tls_cert) != bool(tls_key):
        raise InputError("--tls-cert and --tls-key go together")
    Principals(principals_file)  # refuse a bad file now, with one line, not at the first request
    settings = Settings(
        log_url=cli_settings(ctx)["log_url"],
        db_url=cli_settings(ctx)["db_url"],
        principals=principals_file,
        deadline=deadline,
        advertise_url=advertise_url,
    )
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
        log_level=log_level,
        access_log=access_log,
        # The C HTTP parser and event loop (dependencies): the Python ones (h11,
        # asyncio) cost about twice the CPU per request.
        loop="uvloop",
        http="httptools",
        # Answers are small JSON; a slow client must not hold a writer.
        timeout_keep_alive=30,
    )


@click.group()
def principals() -> None:
    """Manage the principals file the service authenticates against.

    \b
    Example:
      ledger principals add ci --role evaluate --role read --file principals.toml
      ledger principals list --file principals.toml
    """


@principals.command("add")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True, help="snapshot, train, evaluate, approve, deploy:ENV, deploy:*, drift, retire, read, act-as (repeat).")
@click.option("--file", "principals_file", envvar="LEDGER_PRINCIPALS", required=True, type=click.Path(dir_okay=False), help=PRINCIPALS_HELP)
@click.option("--replace", is_flag=True, help="Issue a new token (and roles) for an existing principal; the old token stops working.")
def add(name, roles, principals_file, replace) -> None:
    """Add a principal and print its token, once: only its hash is stored.

    A running service picks the change up within a second.

    \b
    Example:
      ledger principals add deployer --role deploy:production --role read --file principals.toml
    """
    from ledger.service.principals import add_principal

    token = add_principal(principals_file, name, list(roles), replace=replace)
    click.echo(token)
    click.echo(f"principal {name!r} saved in {principals_file}; the token above is shown only now", err=True)


@principals.command("list")
@click.option("--file", "principals_file", envvar="LEDGER_PRINCIPALS", required=True, type=click.Path(dir_okay=False), help=PRINCIPALS_HELP)
def list_(principals_file) -> None:
    """Print each principal and its roles.

    \b
    Example:
      ledger principals list --file principals.toml
    """
    import tomllib

    from ledger.service.principals import Principals

    Principals(principals_file)
    with open(principals_file, "rb") as f:
        data = tomllib.load(f)
    for name, entry in sorted(data.get("principals", {}).items()):
        click.echo(f"{name}\t{','.join(entry.get('roles', []))}")
commands: list = [serve, principals]
