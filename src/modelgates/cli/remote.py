"""The commands that talk to a running server over HTTP, as its users do:
``modelgates login`` (a key for this terminal through the consent page) and
``modelgates whoami``."""

from __future__ import annotations

import click

from modelgates.display import printable


@click.command()
@click.option("--server", required=True, metavar="URL", help="The ModelGates server's base URL.")
@click.option("--label", default=None, help="Label of the new key (default: names this host).")
@click.option("--no-browser", is_flag=True, help="Print the URL instead of opening a browser.")
@click.option(
    "--timeout",
    default=300.0,
    show_default=True,
    type=click.FloatRange(1, 3600),
    help="Seconds to wait for the browser to come back.",
)
def login(server: str, label: str | None, no_browser: bool, timeout: float) -> None:
    """Get an API key for this terminal through the server's consent page."""
    from modelgates import credentials
    from modelgates import login as flow
    from modelgates.client import ModelGatesClientError

    terminal = flow.Terminal(
        echo=click.echo,
        prompt=lambda text: str(click.prompt(text, hide_input=False)),
        open_browser=None if no_browser else flow.default_browser,
    )
    try:
        new = flow.login(
            server, label=label or flow.default_label(), timeout=timeout, terminal=terminal
        )
        path = credentials.save(new)
    except (flow.LoginError, credentials.CredentialsError) as exc:
        raise click.ClickException(str(exc)) from exc
    except ModelGatesClientError as exc:
        raise click.ClickException(f"login failed: {exc}") from exc
    click.echo(
        f"Logged in to {new.server}: key {printable(new.label)!r} (hash {new.hash}),"
        f" saved in {path}"
    )


@click.command()
@click.option("--server", default=None, metavar="URL", help="Which stored server (if several).")
def whoami(server: str | None) -> None:
    """Show the stored key's label, limit, usage and expiry (from GET /api/v1/key)."""
    from modelgates import credentials
    from modelgates.client import ModelGatesAPIError, ModelGatesClient, ModelGatesClientError

    try:
        stored = credentials.load(server)
        with ModelGatesClient(stored.server, api_key=stored.key, timeout=30) as client:
            info = client.current_key()
    except credentials.CredentialsError as exc:
        raise click.ClickException(str(exc)) from exc
    except ModelGatesAPIError as exc:
        raise click.ClickException(
            f"{stored.server} refused the stored key: {exc.message} ({exc.status})"
        ) from exc
    except ModelGatesClientError as exc:
        raise click.ClickException(str(exc)) from exc

    def usd(value: float | None) -> str:
        return "none" if value is None else f"${value:.2f}"

    rows = [
        ("server", stored.server),
        ("label", info.label),
        ("hash", stored.hash),
        ("limit", usd(info.limit)),
        ("remaining", usd(info.limit_remaining)),
        ("reset", info.limit_reset or "never"),
        ("usage", f"{usd(info.usage)} (today {usd(info.usage_daily)}, "
                  f"this week {usd(info.usage_weekly)}, this month {usd(info.usage_monthly)})"),
        ("expires", info.expires_at.isoformat() if info.expires_at else "never"),
    ]  # fmt: skip
    for name, value in rows:
        click.echo(f"{name + ':':<11}{printable(str(value))}")
