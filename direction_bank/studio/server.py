"""What serving the studio needs besides the page: Gradio kept offline, the look (system fonts),
the page's script, and the login check that a password cannot be guessed at speed through."""
from __future__ import annotations

import contextvars
import os


# system fonts only: Gradio's default theme fetches its fonts from Google
SANS = ["ui-sans-serif", "system-ui", "sans-serif"]
MONO = ["ui-monospace", "Consolas", "monospace"]


# status lines are announced to screen readers as they change (Gradio's Markdown and Textbox
# take no ARIA attributes; tabs mount their children when first shown, hence the observer). The
# same pass mends what axe-core finds in Gradio's own markup: an empty image or file box labelled
# without a role, upload areas and gallery thumbnails whose label hides their visible text, and
# icon buttons with no name. Ctrl+Enter runs the edit; the before/after slider takes the arrow keys.
PAGE_JS = """() => {
  const mark = () => {
    document.querySelectorAll('[id$="-status"]').forEach((el) => {
      if (!el.hasAttribute('aria-live')) { el.setAttribute('role', 'status'); el.setAttribute('aria-live', 'polite'); }
    });
    document.querySelectorAll('.empty[aria-label]:not([role])').forEach((el) => el.setAttribute('role', 'img'));
    document.querySelectorAll('[aria-label="Click to upload or drop files"]').forEach((el) => el.removeAttribute('aria-label'));
    document.querySelectorAll('button[data-thumb], button[aria-label^="Thumbnail "]').forEach((el) => {
      const base = el.dataset.thumb || el.getAttribute('aria-label'), text = el.innerText.trim();
      el.dataset.thumb = base;  // Gradio's own label, kept: the picture in the button changes
      const label = text ? `${text}, ${base.toLowerCase()}` : base;
      if (el.getAttribute('aria-label') !== label) el.setAttribute('aria-label', label);
    });
    document.querySelectorAll('button:not([aria-label]):not([title])').forEach((el) => {
      if (!el.innerText.trim()) el.setAttribute('aria-label', el.closest('[aria-label]')?.getAttribute('aria-label') || 'image');
    });
    document.querySelectorAll('#compare [data-testid="slider"]:not([tabindex])').forEach(keyed_slider);
  };
  // the before/after line takes the focus and moves with the arrow keys (5%, Shift 20%): each key is
  // the drag a mouse would make, so the component's own handler moves it
  const keyed_slider = (el) => {
    const value = () => {
      const line = el.getBoundingClientRect(), frame = el.parentElement.getBoundingClientRect();
      return Math.round(100 * (line.left + line.width / 2 - frame.left) / (frame.width || 1));
    };
    el.setAttribute('tabindex', '0');
    el.setAttribute('role', 'slider');
    el.setAttribute('aria-label', 'before and after: where the line between them is');
    el.setAttribute('aria-valuemin', '0');
    el.setAttribute('aria-valuemax', '100');
    el.setAttribute('aria-valuenow', String(value()));
    el.addEventListener('keydown', (event) => {
      const step = {ArrowLeft: -1, ArrowDown: -1, ArrowRight: 1, ArrowUp: 1}[event.key];
      if (!step) return;
      event.preventDefault();
      const line = el.getBoundingClientRect(), frame = el.parentElement.getBoundingClientRect();
      const x = line.left + line.width / 2, y = line.top + line.height / 2;
      const to = Math.min(frame.right, Math.max(frame.left, x + step * frame.width * (event.shiftKey ? 0.2 : 0.05)));
      const send = (target, type, at) => target.dispatchEvent(new MouseEvent(type,
        {bubbles: true, cancelable: true, view: window, clientX: at, clientY: y, button: 0}));
      send(el, 'mousedown', x);
      send(window, 'mousemove', to);
      send(window, 'mouseup', to);
      requestAnimationFrame(() => el.setAttribute('aria-valuenow', String(value())));
    });
  };
  mark();
  new MutationObserver(mark).observe(document.body, {childList: true, subtree: true, characterData: true});
  document.addEventListener('keydown', (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === 'Enter') {
      const run = document.querySelector('#run');
      if (run && run.offsetParent !== null && !run.disabled) { event.preventDefault(); run.click(); }
    }
  });
}"""

# contrast of at least 4.5:1 for text (WCAG AA), a focus ring a keyboard user can see; a small photo
# shown at a usable size, gallery captions whole (the scores on a line under the name), history
# tiles as thumbnails (whole pictures, not crops); buttons change state at once (Run fading back in
# from disabled passed through colours below the contrast it has at either end)
PAGE_CSS = """
:focus-visible { outline: 3px solid #1d4ed8 !important; outline-offset: 2px !important; }
button { transition: none !important; }
footer a, footer button, footer .show-api, footer .settings { color: #374151 !important; opacity: 1 !important; }
#photo img { width: 100%; height: 300px; object-fit: contain; }
#results .thumbnail-item, #history .thumbnail-item { aspect-ratio: auto; height: auto; overflow: visible;
  display: flex; flex-direction: column; }
#results .thumbnail-item > img, #history .thumbnail-item > img { aspect-ratio: 1 / 1; height: auto; object-fit: contain; }
#results .caption-label, #history .caption-label { position: static; display: block; max-width: 100%;
  white-space: pre-line; overflow: visible; text-overflow: clip; opacity: 1; border: none; border-radius: 0; }
"""


def offline_environment() -> None:
    """Gradio and the Hub make no calls of their own (analytics, update checks, telemetry); set
    before gradio is imported."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("GRADIO_DO_NOT_TRACK", "True")


def theme():
    """Gradio's default look with system fonts (nothing fetched from a CDN)."""
    import gradio as gr

    return gr.themes.Default(font=SANS, font_mono=MONO).set(
        button_primary_background_fill="#c2410c", button_primary_background_fill_hover="#9a3412",
        button_primary_text_color="white", button_cancel_background_fill="#b91c1c",
        button_cancel_background_fill_hover="#991b1b", button_cancel_text_color="white",
        body_text_color_subdued="#4b5563", block_info_text_color="#4b5563")


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
