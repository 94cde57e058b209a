"""Ask an OpenAI-compatible server (Ollama, LM Studio, vLLM, a hosted API) what it serves.

`GET {base_url}/models` is the cheapest call every such server answers, so it is both
the model list and the "Test connection" button. Blocking with short timeouts: run it
off the UI thread. Failures are AppErrors that say what to change.
"""

from __future__ import annotations

import requests

from desktop.core.errors import AppError

# (connect, read): a server on this computer answers in milliseconds, a hosted one in a second.
TIMEOUT = (3.05, 10.0)


class ServerProbeError(AppError):
    """The server could not be asked, or its answer was not an OpenAI-style model list."""

    title = "Connection test failed"


def list_models(base_url: str, api_key: str = "", session: requests.Session | None = None) -> list[str]:
    """The model ids the server at `base_url` (e.g. http://127.0.0.1:11434/v1) offers."""
    url = base_url.rstrip("/") + "/models"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        resp = (session or requests).get(url, headers=headers, timeout=TIMEOUT)
    except requests.exceptions.Timeout:
        raise ServerProbeError(f"{base_url} did not answer within {TIMEOUT[1]:.0f} s. Is the server busy "
                               "or behind a firewall?") from None
    except requests.exceptions.RequestException:
        raise ServerProbeError(f"Nothing answers at {base_url}. Is the server running, and is the address "
                               "right (Ollama: http://127.0.0.1:11434/v1, LM Studio: http://127.0.0.1:1234/v1)?"
                               ) from None
    if resp.status_code in (401, 403):
        raise ServerProbeError(f"{base_url} refused the API key (HTTP {resp.status_code}). Check the key.")
    if resp.status_code == 404:
        raise ServerProbeError(f"{base_url} has no model list (HTTP 404). The address is usually the API's "
                               "base, ending in /v1.")
    if resp.status_code >= 400:
        raise ServerProbeError(f"{base_url} answered HTTP {resp.status_code}. Try again in a moment.")
    try:
        data = resp.json()["data"]
        models = [str(item["id"]) for item in data]
    except (ValueError, KeyError, TypeError):
        raise ServerProbeError(f"{base_url} answered, but not with an OpenAI-style model list. Is it an "
                               "OpenAI-compatible server, and does the address end in /v1?") from None
    return models
