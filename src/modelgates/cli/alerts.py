"""``modelgates alerts``: budget alert deliveries and their attempts, users' webhook URLs,
and a fresh signing secret."""

from __future__ import annotations

import click

from modelgates.cli._common import database_option, run, user_by_email
from modelgates.cli._tables import moment, table
from modelgates.container import Services
from modelgates.models import AlertAttempt, AlertDelivery
from modelgates.services.audit import CLI
from modelgates.webhooks import new_secret


@click.group("alerts")
def alerts() -> None:
    """Budget alerts: deliveries, attempts, webhooks, the signing secret."""


@alerts.command("list")
@click.option("--user", "email", default=None, help="Only this user's alerts.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@database_option
def list_deliveries(email: str | None, limit: int, database_url: str | None) -> None:
    """Deliveries newest first: status, tries, last HTTP status and error, next try."""

    async def find(svc: Services) -> list[AlertDelivery]:
        user_id = (await user_by_email(svc, email)).id if email else None
        return await svc.alerts.deliveries(limit=limit, user_id=user_id)

    found = run(find, database_url)
    if not found:
        click.echo("no alert deliveries")
        return
    headers = ("DELIVERY", "ALERT", "SCOPE", "AT", "TO", "STATUS", "TRIES", "HTTP", "ERROR",
               "NEXT TRY")  # fmt: skip
    rows = [
        (d.id, d.alert.id, f"{d.alert.scope} {d.alert.threshold}%", moment(d.alert.created_at),
         d.destination, d.status, str(d.attempts),
         "-" if d.last_http_status is None else str(d.last_http_status),
         d.last_error or "-", moment(d.next_attempt_at, none="-"))
        for d in found
    ]  # fmt: skip
    click.echo(table(headers, rows, right={6, 7}))


@alerts.command("attempts")
@click.argument("delivery_id")
@database_option
def list_attempts(delivery_id: str, database_url: str | None) -> None:
    """Every try of one delivery."""

    async def find(svc: Services) -> list[AlertAttempt]:
        return await svc.alerts.attempts(delivery_id.strip())

    found = run(find, database_url)
    if not found:
        click.echo("no attempts")
        return
    rows = [
        (str(a.number), moment(a.attempted_at),
         "-" if a.http_status is None else str(a.http_status), a.error or "-")
        for a in found
    ]  # fmt: skip
    click.echo(table(("TRY", "AT", "HTTP", "ERROR"), rows, right={0, 2}))


@alerts.command("webhook")
@click.argument("email")
@click.argument("url", required=False)
@click.option("--remove", is_flag=True, help="Remove the user's webhook URL.")
@database_option
def set_webhook(email: str, url: str | None, remove: bool, database_url: str | None) -> None:
    """Show, set or remove the webhook URL a user's alerts also go to."""

    async def change(svc: Services) -> str | None:
        user = await user_by_email(svc, email)
        if url is None and not remove:
            return await svc.alerts.webhook_of(user.id)
        return await svc.alerts.set_webhook(
            user, None if remove else url, actor=CLI, by_operator=True
        )

    click.echo(run(change, database_url) or "no webhook")


@alerts.command("secret")
def make_secret() -> None:
    """Print a new signing secret for MODELGATES_ALERT_WEBHOOK_SECRET (nothing is stored)."""
    click.echo(new_secret())
