"""Sentences from any OpenAI-compatible chat-completions server (OpenAI, vLLM, Ollama, llama.cpp)."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

from direction_bank.cleaning import split_lines
from direction_bank.errors import BankError
from direction_bank.generators.base import Provenance
from direction_bank.generators.prompts import PROMPT_VERSION, list_request

DEFAULT_OPENAI_MODEL = "gpt-4.1-mini"


class OpenAIGenerator:
    """Asks for several dozen captions per request, `concurrency` requests at a time; the
    official client retries rate limits and server errors with exponential backoff."""

    def __init__(self, model: str | None = None, base_url: str | None = None,
                 api_key: str | None = None, per_request: int = 40, concurrency: int = 4,
                 temperature: float = 1.0, max_retries: int = 6, timeout_s: float = 120.0):
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
        self.client = openai.OpenAI(
            api_key=api_key, base_url=base_url, max_retries=max_retries, timeout=timeout_s
        )
        self.per_request = per_request
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

    def _request(self, concept: str) -> list[str]:
        import openai

        try:
            response = self.client.chat.completions.create(
                model=self.model,
                messages=[{"role": "user", "content": list_request(concept, self.per_request)}],
                temperature=self.temperature,
            )
        except (openai.AuthenticationError, openai.PermissionDeniedError) as error:
            raise BankError(
                f"the server rejected the API key ({error.status_code}); check OPENAI_API_KEY"
            ) from None
        except openai.NotFoundError:
            raise BankError(f"the server does not know the model {self.model!r}; set --llm") from None
        except openai.APIConnectionError:
            raise BankError(f"cannot reach {self.base_url or 'the OpenAI API'}") from None
        except openai.APIStatusError as error:
            raise BankError(
                f"the server kept failing ({error.status_code}) after "
                f"{self.client.max_retries} retries; try again later"
            ) from None
        self.usage["requests"] += 1
        if response.usage is not None:
            self.usage["prompt_tokens"] += response.usage.prompt_tokens or 0
            self.usage["completion_tokens"] += response.usage.completion_tokens or 0
        lines = []
        for choice in response.choices or []:
            content = getattr(choice.message, "content", None)
            if isinstance(content, str):
                lines.extend(split_lines(content))
        return lines

    def batches(self, concept: str, batch_size: int) -> Iterator[list[str]]:
        """Yield the lines of `concurrency` concurrent requests at a time, forever."""
        with ThreadPoolExecutor(self.concurrency) as pool:
            while True:
                futures = [pool.submit(self._request, concept) for _ in range(self.concurrency)]
                lines = []
                for future in futures:
                    lines.extend(future.result())
                yield lines
