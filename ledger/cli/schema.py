"""``ledger schema [TYPE]``: every field of an event type, for people writing the
JSON that ``ledger emit`` reads. The library is :mod:`ledger.schema_doc`."""

from __future__ import annotations

import click

from ledger.cli.output import chosen_format, output_options, render

COLUMNS = ("name", "type", "required", "allowed", "default", "example", "doc")


@click.command("schema")
@click.argument("event_type", metavar="[TYPE]", required=False)
@click.option("--template", is_flag=True, help="Print an example JSON object to start from (actor goes to --actor).")
@output_options
def schema(event_type: str | None, template: bool, fmt, as_json, as_csv) -> None:
    """The fields of an event type: type, whether required, allowed values, default,
    an example and what it means — derived from the published Avro schemas and the
    event models. Without TYPE, the event types.

    \b
    Example:
      ledger schema evaluate
      ledger schema deploy --template > deploy.json   # edit, then:
      ledger emit deploy --actor deployer --json deploy.json
    """
    from ledger import schema_doc
    from ledger.events import EVENT_CLASSES
    from ledger.jsonio import dumps

    out = chosen_format(fmt, as_json, as_csv)
    if event_type is None:
        if template:
            raise click.UsageError("--template needs a TYPE")
        rows = [{"type": c.cli_name, "event": c.event_type, "doc": (c.__doc__ or "").strip().splitlines()[0] if c.__doc__ else ""} for c in EVENT_CLASSES]
        click.echo(render(rows, ("type", "event"), out))
        return
    if template:
        click.echo(dumps(schema_doc.template(event_type)))
        return
    rows = [f.as_dict() for f in schema_doc.describe(event_type)]
    if out != "json":
        rows = [{**r, "required": "yes" if r["required"] else "no"} for r in rows]
    click.echo(render(rows, COLUMNS, out))


commands: list = [schema]
