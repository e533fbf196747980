"""The gateway's TOML config and the pure cost arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from modelgates.catalog import ConfigError, load_config, parse_config
from modelgates.cli import main
from modelgates.gateway.usage import Usage
from modelgates.pricing import Price, estimate_tokens

GOOD = """
[gateway]
max_request_cost = 0.50
request_timeout_seconds = 120
[providers.local]
base_url = "http://127.0.0.1:8001/v1/"
api_key_env = "LOCAL_LLM_API_KEY"
[[models]]
id = "local/llama-3-8b"
provider = "local"
prompt_price = 0.20
completion_price = 0.60
context_length = 8192
"""


def test_readme_example_parses() -> None:
    config = parse_config(GOOD)
    route = config.models["local/llama-3-8b"]
    assert route.upstream_model == "llama-3-8b"
    assert route.provider.base_url == "http://127.0.0.1:8001/v1"
    assert route.price == Price(prompt=200_000_000, completion=600_000_000)
    assert config.max_request_cost == 500_000_000


MODEL = (
    '[providers.p]\nbase_url = "http://x"\n'
    '[[models]]\nid = "a/b"\nprovider = "p"\nprompt_price = 1\ncompletion_price = 1\n'
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[gateway\n", "not valid TOML"),
        ('[gateway]\nmax_request_cost = "x"\n', "gateway.max_request_cost"),
        ("[gateway]\nmax_request_cost = -1\n", "gateway.max_request_cost"),
        ("[gateway]\nsurprise = 1\n", "surprise"),
        ('[[models]]\nid = "a/b"\nprovider = "p"\nprompt_price = 1\ncompletion_price = 1\n',
         "not a declared provider"),
        ('[providers.p]\nbase_url = "ftp://x"\n', "base_url"),
        *((MODEL + extra, message) for extra, message in (
            ('output_modalities = ["smell"]\n', "models\\[0\\].output_modalities"),
            ("input_modalities = []\n", "input_modalities must not be empty"),
            ('input_modalities = ["text", "text"]\n', "twice"),
            ("created = 2024-04-18T00:00:00\n", "time zone"),
            ('created = "yesterday"\n', "created must be"),
            ("created = -1\n", "created must be"),
            ('supported_parameters = ["Bad Name"]\n', "not a parameter name"),
            ('description = "a\\u0000b"\n', "control characters"),
        )),
        (MODEL.replace('"a/b"', '"a/b*"'), "models\\[0\\].id must be"),
        (MODEL.replace('"a/b"', '"a b"'), "models\\[0\\].id must be"),
        ('[providers.p]\nbase_url = "http://x"\nstatus_page_url = "ftp://x"\n', "not an http"),
    ],
)  # fmt: skip
def test_bad_configs_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(text)


def test_load_config_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "gw.toml"
    path.write_text("[gateway\n")
    with pytest.raises(ConfigError, match=r"gateway config .*gw\.toml: not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")


def test_serve_refuses_a_bad_config_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "gw.toml"
    path.write_text('[gateway]\nmax_request_cost = "x"\n')
    result = CliRunner().invoke(
        main,
        ["serve", "--config", str(path), "--database-url", f"sqlite:///{tmp_path / 'x.db'}"],
    )
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Error: gateway config")
    assert "gateway.max_request_cost" in lines[0]


def cost(price: Price, prompt: int, completion: int) -> int:
    return price.cost(Usage(prompt, completion)).total


def test_cost_rounds_up_once_on_the_sum() -> None:
    price = Price.per_million_usd(0.20, 0.60)
    assert cost(price, 0, 0) == 0
    assert cost(price, 1, 0) == 200  # 0.2 USD / 1e6 tokens = 200 nano-dollars a token
    assert cost(price, 1_000_000, 1_000_000) == 800_000_000
    odd = Price.per_million_usd(0.0000015, 0)  # 0.0015 nano-dollars a token
    assert cost(odd, 1, 0) == 1
    assert cost(odd, 1000, 0) == 2  # 1.5 → 2
    half = Price.per_million_usd(0.0005, 0.0005)  # half a nano-dollar a token
    assert cost(half, 1, 1) == 1  # one rounding, on the sum


def test_estimates_and_worst_cases() -> None:
    assert [estimate_tokens(n) for n in (0, 1, 4, 5, 8)] == [0, 1, 1, 2, 2]
    price = Price.per_million_usd(1.0, 2.0)
    ask = price.ask(10, 1, 5, cap=0)
    assert ask.amount(5) == 10 * 1000 + 5 * 2000
    assert price.ask(10, 3, 5, cap=0).amount(5) == 10 * 1000 + 3 * 5 * 2000
