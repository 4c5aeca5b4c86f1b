"""What serving the studio needs besides the page: Gradio kept offline, the look (system fonts),
the page's script, and the login check that a password cannot be guessed at speed through."""
from __future__ import annotations

import contextvars
import os


# system fonts only: Gradio's default theme fetches its fonts from Google
SANS = ["ui-sans-serif", "system-ui", "sans-serif"]
MONO = ["ui-monospace", "Consolas", "monospace"]


# status lines are announced to screen readers as they change (Gradio's Markdown and Textbox
# take no ARIA attributes; tabs mount their children when first shown, hence the observer)
PAGE_JS = """() => {
  const mark = () => document.querySelectorAll('[id$="-status"]').forEach((el) => {
    if (!el.hasAttribute('aria-live')) { el.setAttribute('role', 'status'); el.setAttribute('aria-live', 'polite'); }
  });
  mark();
  new MutationObserver(mark).observe(document.body, {childList: true, subtree: true});
}"""


def offline_environment() -> None:
    """Gradio and the Hub make no calls of their own (analytics, update checks, telemetry); set
    before gradio is imported."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("GRADIO_DO_NOT_TRACK", "True")


def theme():
    """Gradio's default look with system fonts (nothing fetched from a CDN)."""
    import gradio as gr

    return gr.themes.Default(font=SANS, font_mono=MONO)


# the peer address of the request being served (ClientAddress sets it), for LoginLimiter
_CLIENT = contextvars.ContextVar("dbank_studio_client", default="")


class ClientAddress:
    """ASGI middleware that makes each HTTP request's peer address known to the code serving it
    (Gradio hands a login check the user name and password only)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        token = _CLIENT.set((scope.get("client") or ("",))[0])
        try:
            return await self.app(scope, receive, send)
        finally:
            _CLIENT.reset(token)


class LoginLimiter:
    """The studio's password check: constant-time comparison, a pause after each wrong
    password, and no check at all (every login refused) for `lockout_s` once `attempts` wrong
    passwords came within that time from one client address, so a password cannot be guessed at
    speed, and strangers guessing cannot lock the owner out from another address. `check` is a
    coroutine: Gradio awaits it on its event loop, which a blocking pause would stall for all."""

    def __init__(self, user: str, password: str, attempts: int = 10, lockout_s: float = 60.0,
                 pause_s: float = 0.5, clock=None):
        import time

        self.user, self.password = user, password
        self.attempts, self.lockout_s, self.pause_s = attempts, lockout_s, pause_s
        self.clock = clock or time.monotonic
        self.failures: dict[str, list[float]] = {}  # client address -> times of its wrong passwords

    async def check(self, user: str, password: str) -> bool:
        """Whether this login (from the client address being served) is let in."""
        import asyncio
        import hmac

        now, client = self.clock(), _CLIENT.get()
        self.failures = {address: recent for address, times in self.failures.items()
                         if (recent := [t for t in times if now - t < self.lockout_s])}
        if len(self.failures.get(client, [])) >= self.attempts:
            return False
        good = hmac.compare_digest(f"{user}\0{password}".encode(), f"{self.user}\0{self.password}".encode())
        if not good:
            self.failures.setdefault(client, []).append(now)
            await asyncio.sleep(self.pause_s)
        return good
