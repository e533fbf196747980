"""The ``modelgates`` command: run the server, administer it on its database (users,
keys, apps, the database, the audit trail, budget alerts), and log a terminal in to a server.

One module per command group; this one only assembles them.
"""

from __future__ import annotations

import click

from modelgates.cli._common import redact_url
from modelgates.cli.alerts import alerts
from modelgates.cli.apps import apps
from modelgates.cli.audit import audit_trail
from modelgates.cli.db import db
from modelgates.cli.keys import keys
from modelgates.cli.remote import login, whoami
from modelgates.cli.serve import serve
from modelgates.cli.upstreams import upstreams
from modelgates.cli.users import users

__all__ = ["main", "redact_url"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="modelgates")
def main() -> None:
    """ModelGates: an LLM gateway that hands out user-controlled API keys (OAuth PKCE)."""


for command in (serve, users, keys, apps, db, audit_trail, alerts, upstreams, login, whoami):
    main.add_command(command)
