"""Sentences from any OpenAI-compatible chat-completions server (OpenAI, vLLM, Ollama, llama.cpp)."""
from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

from direction_bank.text.cleaning import split_lines
from direction_bank.errors import BankError, first_line
from direction_bank.text.generators.base import Provenance
from direction_bank.text.generators.prompts import PROMPT_VERSION, list_request

DEFAULT_OPENAI_MODEL = "gpt-4.1-mini"
DEFAULT_REQUEST_TIMEOUT_S = 120.0
DEFAULT_DEADLINE_S = 3600.0
CONNECT_TIMEOUT_S = 10.0
MAX_ANSWER_BYTES = 16 << 20


class RedirectRefused(Exception):
    """A server's redirect to another host, which is not followed."""


class OpenAIGenerator:
    """Asks for several dozen captions per request, `concurrency` requests at a time; the
    official client retries rate limits, server errors and timeouts with exponential backoff.

    Every request is bounded as a whole (`timeout_s`, answer included, so a server that sends a
    byte every few seconds still times out), and the whole run by `deadline_s`."""

    def __init__(self, model: str | None = None, base_url: str | None = None,
                 api_key: str | None = None, per_request: int = 40, concurrency: int = 4,
                 temperature: float = 1.0, max_retries: int = 2,
                 timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S, deadline_s: float = DEFAULT_DEADLINE_S,
                 seed: int = 0):
        import openai

        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        api_key = api_key or os.environ.get("OPENAI_API_KEY")
        if not api_key:
            if base_url is None:
                raise BankError(
                    "no OpenAI API key: set OPENAI_API_KEY, or point --base-url at an "
                    "OpenAI-compatible server (or use --generator local)"
                )
            api_key = "none"  # local servers (vLLM, Ollama, llama.cpp) accept any key
        self.model = model or DEFAULT_OPENAI_MODEL
        self.base_url = base_url
        self.where = base_url or "the OpenAI API"
        self.client = openai.OpenAI(
            api_key=api_key, base_url=base_url, max_retries=max_retries,
            timeout=openai.Timeout(timeout_s, connect=min(CONNECT_TIMEOUT_S, timeout_s)),
            http_client=openai.DefaultHttpxClient(event_hooks={"response": [self._refuse_redirect_elsewhere]}),
        )
        self.timeout_s = timeout_s
        self.deadline_s = deadline_s
        self._deadline = time.monotonic() + deadline_s
        self.per_request = per_request
        self.seed = seed
        self.requests_sent = 0
        self.concurrency = concurrency
        self.temperature = temperature
        self.usage = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0}
        self.provenance = Provenance(
            generator="openai",
            model=self.model,
            prompt_version=PROMPT_VERSION,
            settings={"temperature": temperature, "per_request": per_request,
                      "base_url": base_url or "https://api.openai.com/v1"},
        )

    def _request(self, concept: str, seed: int) -> list[str]:
        import openai

        http = self._http_library()

        limit = min(time.monotonic() + self.timeout_s, self._deadline)
        body = bytearray()
        try:
            with self.client.chat.completions.with_streaming_response.create(
                model=self.model,
                messages=[{"role": "user", "content": list_request(concept, self.per_request)}],
                temperature=self.temperature,
                seed=seed,  # honoured on a best-effort basis by OpenAI and vLLM
            ) as response:
                for chunk in response.iter_bytes():
                    body += chunk
                    if time.monotonic() > limit:
                        raise BankError(self._past_deadline() if limit == self._deadline else
                                        f"{self.where} timed out: its answer took over {self.timeout_s:g} s "
                                        "(--timeout)")
                    if len(body) > MAX_ANSWER_BYTES:
                        raise BankError(f"{self.where} sent an answer over {MAX_ANSWER_BYTES >> 20} MiB")
        except (openai.APITimeoutError, http.TimeoutException):
            raise BankError(
                f"{self.where} timed out: no answer within {self.timeout_s:g} s, "
                f"{self.client.max_retries + 1} tries (--timeout)"
            ) from None
        except (openai.AuthenticationError, openai.PermissionDeniedError) as error:
            raise BankError(
                f"the server rejected the API key ({error.status_code}); check OPENAI_API_KEY"
            ) from None
        except openai.NotFoundError:
            raise BankError(f"the server does not know the model {self.model!r}; set --llm") from None
        except RedirectRefused as error:
            raise BankError(str(error)) from None
        except (openai.APIConnectionError, http.TransportError) as error:
            raise BankError(f"cannot reach {self.where} ({first_line(error.__cause__ or error)})") from None
        except openai.APIStatusError as error:
            raise BankError(
                f"the server kept failing ({error.status_code}) after "
                f"{self.client.max_retries} retries; try again later"
            ) from None
        return self._captions(bytes(body))

    def _refuse_redirect_elsewhere(self, response) -> None:
        """An httpx response hook: a redirect to another host is never followed (the request
        carries the API key and the prompt)."""
        location = response.headers.get("location")
        if response.is_redirect and location:
            target = response.request.url.join(location)
            if target.host != response.request.url.host:
                raise RedirectRefused(f"{self.where} redirected the request to another host, {target.host}:"
                                      f"{target.port or ''} ({str(target)[:80]}); refused: point --base-url "
                                      "at the server itself")

    def _past_deadline(self) -> str:
        return (f"generation ran past its deadline of {self.deadline_s:g} s (--deadline); "
                "what was stored is kept, run again to continue")

    def _http_library(self):
        """The HTTP library under the client (httpx, or httpx2 in newer clients): reading the
        body ourselves meets its exceptions unwrapped."""
        import importlib

        roots = (cls.__module__.split(".")[0] for cls in type(self.client._client).__mro__)
        return importlib.import_module(next(root for root in roots if root.startswith("httpx")))

    def _captions(self, body: bytes) -> list[str]:
        """The caption lines of a chat-completion answer, its token usage counted; an answer that
        is not one is a one-line BankError."""
        try:
            data = json.loads(body)
        except ValueError:
            raise BankError(f"{self.where} answered with something other than JSON: {body[:60]!r}") from None
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list):
            raise BankError(f"{self.where} answered JSON that is not a chat completion (no choices list)")
        usage = data.get("usage")
        counts = {}
        if usage is not None:
            counts = {k: usage.get(k) for k in ("prompt_tokens", "completion_tokens")} if isinstance(usage, dict) else None
            if counts is None or not all(v is None or (type(v) is int and v >= 0) for v in counts.values()):
                raise BankError(f"{self.where} reported its token usage in the wrong form: {usage!r:.80}")
        self.usage["requests"] += 1
        self.usage["prompt_tokens"] += counts.get("prompt_tokens") or 0
        self.usage["completion_tokens"] += counts.get("completion_tokens") or 0
        lines, texts = [], 0
        for choice in choices:
            message = choice.get("message") if isinstance(choice, dict) else None
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                texts += 1
                lines.extend(split_lines(content))
        if not texts:
            refusal = next((c["message"].get("refusal") for c in choices if isinstance(c, dict)
                            and isinstance(c.get("message"), dict) and c["message"].get("refusal")), None)
            raise BankError(f"{self.where} sent an empty answer (no message text"
                            + (f"; it refused: {str(refusal)[:80]}" if refusal else "") + ")")
        return lines

    def batches(self, concept: str, batch_size: int, round_seed: int = 0) -> Iterator[list[str]]:
        """Yield the lines of `concurrency` concurrent requests at a time, until the deadline;
        each request carries its own seed (the user's, the round's, its number)."""
        from direction_bank.text.generators.base import mixed_seed

        self._deadline = time.monotonic() + self.deadline_s
        with ThreadPoolExecutor(self.concurrency) as pool:
            while True:
                if time.monotonic() >= self._deadline:
                    raise BankError(self._past_deadline())
                futures = []
                for _ in range(self.concurrency):
                    seed = mixed_seed(self.seed, round_seed, self.requests_sent) % 2**31
                    self.requests_sent += 1
                    futures.append(pool.submit(self._request, concept, seed))
                lines = []
                for future in futures:
                    lines.extend(future.result())
                yield lines
