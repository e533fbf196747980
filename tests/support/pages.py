"""Helpers for driving the HTML pages in-process with httpx."""

from __future__ import annotations

import re

import httpx

CSRF_INPUT = re.compile(r'name="csrf" value="([^"]*)"')


def csrf_of(html: str) -> str:
    match = CSRF_INPUT.search(html)
    assert match is not None, "no CSRF field on the page"
    return match.group(1)


async def log_in(
    http: httpx.AsyncClient, email: str, password: str, *, next_path: str = "/keys"
) -> httpx.Response:
    """GET the log-in form (for its CSRF cookie and token), then POST it."""
    form = await http.get("/login", params={"next": next_path})
    assert form.status_code == 200, form.text
    return await http.post(
        "/login",
        data={"email": email, "password": password, "csrf": csrf_of(form.text), "next": next_path},
    )
