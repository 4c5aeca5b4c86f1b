"""Drives a real `dbank studio` server, started here, with headless Debian Chromium (Playwright)
and with gradio_client, and writes what it saw to a JSON file. Run by tests/test_studio.py in a
loopback-only network namespace (server, browser and client all inside it), so it needs no
network and nothing it does can reach another address.

    python tests/studio_driver.py OUT_FOLDER IMAGE PORT [--auth USER:PASSWORD] [--host HOST]
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

CHROMIUM = "/usr/lib/chromium/chromium"
STEPS, SIZE = "3", "64"


def wait_for_port(host: str, port: int, server, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}")
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            if probe.connect_ex((host, port)) == 0:
                return
        time.sleep(0.3)
    raise SystemExit("the server did not come up")


def drive_browser(url: str, image: str, out: Path, seen: dict) -> None:
    """Load the page, check the concepts, run two edits on one photo, keep a screenshot."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-features=Translate"])
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        requests = []
        page.on("request", lambda request: requests.append(request.url))
        try:
            _edit_twice(page, url, image, out, seen)
        except Exception:
            page.screenshot(path=str(out / "failed.png"), full_page=True)
            raise
        finally:
            browser.close()
    web = ("http", "https", "ws", "wss")
    seen["request_hosts"] = sorted({urlparse(u).hostname for u in requests if urlparse(u).scheme in web})
    seen["requests"] = len(requests)


def _edit_twice(page, url: str, image: str, out: Path, seen: dict) -> None:
    page.goto(url, wait_until="networkidle")
    page.locator("#concepts").get_by_text("zebra").first.wait_for(timeout=30_000)  # filled on load
    seen["concepts_table"] = page.locator("#concepts").inner_text()
    page.get_by_role("tab", name="Edit").click()
    page.locator("#photo input[type=file]").set_input_files(image)
    page.locator("#photo img").first.wait_for(timeout=30_000)
    page.locator("#caption textarea").fill("a photo of a horse")
    directions = page.locator("#directions input")
    directions.fill("horse2zebra")
    directions.press("Enter")
    page.keyboard.press("Escape")
    page.locator("#steps input[type=number]").fill(STEPS)
    page.locator("#size input[type=number]").fill(SIZE)
    page.locator("#word textarea, #word input").first.fill("horse")
    started = time.monotonic()
    page.locator("#run").click()
    page.locator("#edit-status").get_by_text(" s: ").wait_for(timeout=120_000)
    seen["first_status"] = page.locator("#edit-status").inner_text()
    seen["first_click_to_images_s"] = time.monotonic() - started
    seen["gallery_images"] = page.locator("#results img").count()
    seen["gallery_labels"] = page.locator("#results").inner_text()
    page.screenshot(path=str(out / "studio.png"), full_page=True)
    # another direction on the same photo: the inversion and reference pass are reused
    page.locator("#directions .token-remove[title='Remove 0']").click()
    directions.fill("zebra2horse")
    directions.press("Enter")
    page.keyboard.press("Escape")
    started = time.monotonic()
    page.locator("#run").click()
    page.locator("#edit-status").get_by_text("reused").wait_for(timeout=120_000)
    seen["second_click_to_images_s"] = time.monotonic() - started
    seen["second_status"] = page.locator("#edit-status").inner_text()
    seen["second_gallery_labels"] = page.locator("#results").inner_text()
    page.screenshot(path=str(out / "studio-second.png"), full_page=True)


def drive_client(url: str, image: str, seen: dict, auth) -> None:
    """The same app through gradio_client: the edit endpoint gives images back."""
    from gradio_client import Client, handle_file

    client = Client(url, auth=auth, verbose=False, download_files=True)
    seen["endpoints"] = sorted(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    gallery, caption, message, archive = client.predict(
        handle_file(image), "a photo of a horse", ["horse2zebra", "zebra2horse"], 1.0, 0.1, 5.0, int(STEPS),
        int(SIZE), 0, "", api_name="/edit")
    seen["client"] = {"labels": [item["caption"] for item in gallery],
                      "files": [item["image"] for item in gallery], "caption": caption, "message": message,
                      "archive": archive}
    import zipfile

    with zipfile.ZipFile(archive) as opened:  # a downloaded edit, dropped back on the page
        name = next(n for n in opened.namelist() if n.endswith(".zebra2horse.png"))
        dropped = Path(image).with_name("dropped.png")
        dropped.write_bytes(opened.read(name))
    loaded = client.predict(handle_file(str(dropped)), api_name="/settings_from_png")
    seen["loaded_settings"] = [loaded[0], loaded[1], *loaded[2:8], loaded[8]]
    try:
        client.predict(handle_file(image), "", ["no-such-direction"], 1.0, 0.1, 5.0, 3, 64, 0, "", api_name="/edit")
    except Exception as error:  # gradio_client's AppError carries the page's one line
        seen["client_error"] = str(error)
    not_an_image = Path(image).with_name("notes.png")
    not_an_image.write_text("not a picture")
    try:  # once Gradio's multi-line "could not preprocess", with server paths
        client.predict(handle_file(str(not_an_image)), "a horse", ["horse2zebra"], 1.0, 0.1, 5.0, 3, 64, 0, "",
                       api_name="/edit")
    except Exception as error:
        seen["not_an_image"] = str(error)
    try:
        client.predict(handle_file(image), "a horse", ["horse2zebra"], 1.0, 0.1, 5.0, "lots", 64, 0, "",
                       api_name="/edit")
    except Exception as error:
        seen["text_steps"] = str(error)
    too_large = Path(image).with_name("huge.png")
    with open(too_large, "wb") as sparse:
        sparse.truncate(101 * 1024 * 1024)  # past the studio's 100 MB upload limit
    try:
        client.predict(handle_file(str(too_large)), "a horse", ["horse2zebra"], 1.0, 0.1, 5.0, 3, 64, 0, "",
                       api_name="/edit")
    except Exception as error:
        seen["too_large"] = str(error)
    try:
        client.predict("zebra", "", api_name="/remove_concept")
    except Exception as error:
        seen["unconfirmed_removal"] = str(error)
    seen["concepts_after"] = [row[0] for row in client.predict(api_name="/refresh")[0]["data"]]


def try_logins(url: str, auth) -> dict:
    """Eleven wrong passwords, then the right one: HTTP status codes and the seconds taken."""
    import urllib.error
    import urllib.parse
    import urllib.request

    def login(password: str) -> int:
        data = urllib.parse.urlencode({"username": auth[0], "password": password}).encode()
        try:
            return urllib.request.urlopen(url + "login", data=data, timeout=30).status
        except urllib.error.HTTPError as error:
            return error.code

    started = time.monotonic()
    wrong = [login(f"guess{i}") for i in range(11)]
    return {"wrong": wrong, "seconds": time.monotonic() - started, "right_after": login(auth[1])}


def main() -> None:
    out, image, port = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    extra = sys.argv[4:]
    auth = None
    if "--auth" in extra:
        auth = tuple(extra[extra.index("--auth") + 1].split(":", 1))
    server = subprocess.Popen([sys.executable, "-m", "direction_bank.cli", "studio", "--port", str(port), *extra],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: dict = {}
    try:
        served = extra[extra.index("--host") + 1].strip("[]") if "--host" in extra else "127.0.0.1"
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(served, served)
        wait_for_port(host, port, server)
        url = f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"
        if auth is None:
            drive_browser(url, image, out, seen)
        else:
            import urllib.request

            try:
                urllib.request.urlopen(url + "config", timeout=10)
                seen["config_without_login"] = 200
            except urllib.error.HTTPError as error:
                seen["config_without_login"] = error.code
        drive_client(url, image, seen, auth)
        if auth is not None:
            seen["logins"] = try_logins(url, auth)
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
        seen["server_stderr"] = stderr
        (out / "seen.json").write_text(json.dumps(seen, indent=2, default=str))


if __name__ == "__main__":
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    main()
