"""Drives a real `dbank studio` server, started here, with headless Debian Chromium (Playwright)
and with gradio_client, and writes what it saw to a JSON file. Run by tests/test_studio.py in a
loopback-only network namespace (server, browser and client all inside it), so it needs no
network and nothing it does can reach another address.

    python tests/studio_driver.py OUT_FOLDER IMAGE PORT PART [--auth USER:PASSWORD] [--host HOST]

PART: `tabs` (the Bank and Directions tabs, the lists following the CLI, then gradio_client),
`edit` (the Edit tab and the first-run example), or `login` (gradio_client through the login only).
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
# axe-core from npm, as the README's test command installs it
AXE = Path(__file__).resolve().parents[1] / ".axe" / "node_modules" / "axe-core" / "axe.min.js"
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


def drive_browser(url: str, image: str, out: Path, seen: dict, flow) -> None:
    """Load the page, wait for the concepts it fills on load, then click through `flow`."""
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
            page.goto(url, wait_until="load")
            page.locator("#concepts").get_by_text("zebra").first.wait_for(timeout=30_000)  # filled on load
            seen["concepts_table"] = page.locator("#concepts").inner_text()
            flow(page, image, out, seen)
        except Exception:
            page.screenshot(path=str(out / "failed.png"), full_page=True)
            raise
        finally:
            browser.close()
    web = ("http", "https", "ws", "wss")
    seen["request_hosts"] = sorted({urlparse(u).hostname for u in requests if urlparse(u).scheme in web})
    seen["requests"] = len(requests)


def _axe(page, tab: str, seen: dict) -> None:
    """axe-core's violations on the page as it stands (the tab `tab` shown): rule, impact, where."""
    if not AXE.is_file():
        return
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    seen.setdefault("axe", {})[tab] = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations.map((v) => ("
        "{id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 4)}))")


def _shot(page, out: Path, name: str, seen: dict) -> None:
    page.screenshot(path=str(out / name), full_page=True)
    seen.setdefault("screenshots", []).append(name)


def _choose(page, names: list[str]) -> None:
    """Empty the directions box, then choose `names`."""
    while page.locator("#directions .token-remove").count():
        page.locator("#directions .token-remove").first.click()
    box = page.locator("#directions input")
    for name in names:
        box.fill(name)
        box.press("Enter")
    page.keyboard.press("Escape")


def _run(page, wait_for: str, seen: dict, key: str) -> None:
    """Click Run and wait for `wait_for` in the line beside it; the seconds go to seen[key]."""
    started = time.monotonic()
    page.locator("#run").click()
    page.locator("#edit-status").get_by_text(wait_for).wait_for(timeout=120_000)
    page.wait_for_function("!document.querySelector('#run').disabled", timeout=30_000)
    seen[key] = time.monotonic() - started


def _the_other_tabs(page, image: str, out: Path, seen: dict) -> None:
    """The Bank and Directions tabs, and the lists following what the CLI changes."""
    _small_things(page, out, seen)
    _lists_follow_the_bank(page, out, seen)


def _edit_tab(page, image: str, out: Path, seen: dict) -> None:
    """Edits on one photo: refused values, results, a mistake, a reused inversion, a long job
    cancelled, the history, an edit by a word and its build, the keyboard, settings from a PNG,
    then the first-run example."""
    page.get_by_role("tab", name="Edit").click()
    seen["info_text"] = page.locator("#scale").inner_text()
    # a .png that is not an image: dbank's line, and the photo box stays empty
    not_an_image = Path(image).with_name("page-notes.png")
    not_an_image.write_text("not a picture")
    page.locator("#photo input[type=file]").set_input_files(str(not_an_image))
    page.locator("#edit-status").get_by_text("not an image").wait_for(timeout=30_000)
    seen["bad_upload_status"] = page.locator("#edit-status").inner_text()
    seen["bad_upload_page"] = page.locator("body").inner_text()
    _shot(page, out, "not-an-image.png", seen)
    page.locator("#photo button").first.focus()  # where a person clicks to upload
    page.locator("#photo input[type=file]").set_input_files(image)
    page.locator("#photo img").first.wait_for(timeout=30_000)
    page.wait_for_timeout(800)
    seen["focus_after_upload"] = page.evaluate(
        "document.activeElement && document.activeElement.closest('#photo') ? 'photo' : "
        "(document.activeElement ? document.activeElement.tagName : 'none')")
    page.locator("#caption textarea").fill("a photo of a horse")
    _choose(page, ["horse2zebra"])
    page.locator("#steps input").fill(STEPS)
    page.locator("#size input").fill(SIZE)
    page.locator("#word textarea, #word input").first.fill("horse")
    # a typed value out of bounds is refused beside its box, and nothing runs
    page.locator("#scale input").fill("999")
    page.locator("#run").click()
    page.get_by_text("scale 999: use a finite number from -20 to 20").first.wait_for(timeout=30_000)
    seen["refused_scale_box"] = page.locator("#scale").inner_text()
    seen["refused_scale_value"] = page.locator("#scale input").input_value()
    seen["refused_gallery_images"] = page.locator("#results img").count()
    _shot(page, out, "refused-value.png", seen)
    page.locator("#scale input").fill("1")
    _run(page, " s: ", seen, "first_click_to_images_s")
    seen["first_status"] = page.locator("#edit-status").inner_text()
    seen["gallery_images"] = page.locator("#results img").count()
    seen["gallery_labels"] = page.locator("#results").inner_text()
    seen["gallery_alt"] = page.locator("#results img").evaluate_all("(imgs) => imgs.map((i) => i.alt)")
    seen["status_live"] = page.locator("#edit-status").get_attribute("aria-live")
    seen["compare_images"] = page.locator("#compare img").count()
    # the before/after line with the keyboard: focused, then moved right by the arrow keys
    line = page.locator('#compare [role="slider"]')
    line.focus()
    seen["slider_focused"] = page.evaluate("document.activeElement.getAttribute('role')")
    before = (line.get_attribute("aria-valuenow"), line.bounding_box()["x"])
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    page.wait_for_timeout(300)
    seen["slider_moved"] = [before, (line.get_attribute("aria-valuenow"), line.bounding_box()["x"])]
    _shot(page, out, "studio.png", seen)
    # a mistake after results: the line beside its box, every result and input kept
    _choose(page, [])
    page.locator("#run").click()
    page.get_by_text("choose at least one direction").first.wait_for(timeout=30_000)
    page.wait_for_function("document.querySelector('#edit-status').innerText.trim() === ''", timeout=30_000)
    seen["mistake_status"] = page.locator("#edit-status").inner_text()  # no stale line beside Run
    seen["mistake_gallery_images"] = page.locator("#results img").count()
    seen["mistake_caption"] = page.locator("#caption textarea").input_value()
    # on the outputs and inputs (a toast from another tab may still be fading)
    seen["error_pills"] = sum(page.locator(box).get_by_text("Error", exact=True).count()
                              for box in ("#results", "#caption", "#edit-status", "#photo", "#compare", "#history"))
    page.locator("#caption textarea").fill("a photo of a horse")  # still editable: no pill over it
    _shot(page, out, "mistake-keeps-results.png", seen)
    # another direction on the same photo: the inversion and reference pass are reused
    _choose(page, ["zebra2horse"])
    _run(page, "reused", seen, "second_click_to_images_s")
    seen["second_status"] = page.locator("#edit-status").inner_text()
    seen["second_gallery_labels"] = page.locator("#results").inner_text()
    seen["history_labels"] = page.locator("#history").inner_text()
    _shot(page, out, "studio-second.png", seen)
    _long_job_cancelled(page, out, seen)
    # the first history entry brings back its settings and pictures
    page.locator("#history img").first.click()
    page.locator("#edit-status").get_by_text("brought back").wait_for(timeout=30_000)
    seen["restored_directions"] = page.locator("#directions").inner_text()
    seen["restored_gallery_labels"] = page.locator("#results").inner_text()
    _shot(page, out, "history-restored.png", seen)
    page.locator("#use-as-input").click()
    page.locator("#edit-status").get_by_text("the compared edit is the photo now").wait_for(timeout=30_000)
    seen["photo_now"] = page.locator("#photo img").first.get_attribute("src")
    # edit by a word the bank has no concept for: the word-swap, labelled so, and said beside Run
    _choose(page, [])
    page.locator("#to-word textarea, #to-word input").first.fill("unicorn")
    _run(page, "word-swap", seen, "word_click_to_images_s")
    seen["word_status"] = page.locator("#edit-status").inner_text()
    seen["word_gallery_labels"] = page.locator("#results").inner_text()
    seen["captions_whole"] = page.evaluate(  # 'word-swap horse->unicorn' was cut to 'word-swap horse->...'
        "[...document.querySelectorAll('#results .caption-label')].map((e) => e.scrollWidth <= e.clientWidth)")
    seen["photo_box_height"] = page.locator("#photo img").first.bounding_box()["height"]
    seen["history_fit"] = page.evaluate("getComputedStyle(document.querySelector('#history img')).objectFit")
    _shot(page, out, "edit-by-a-word.png", seen)
    # the offer to build the concept the word-swap stood in for, with the Bank tab's generator
    seen["build_offer"] = page.locator("#build-concepts").inner_text()
    page.get_by_role("tab", name="Bank").click()
    _pick(page, "#generator", "template")
    page.locator("#count input").fill("8")
    page.get_by_role("tab", name="Edit").click()
    page.locator("#build-concepts").click()
    page.locator("#build-status").get_by_text("run the edit again").wait_for(timeout=120_000)
    seen["build_status"] = page.locator("#build-status").inner_text()
    seen["build_offer_after"] = page.locator("#build-concepts").is_visible()
    _run(page, "the bank's concepts", seen, "built_click_to_images_s")
    seen["built_status"] = page.locator("#edit-status").inner_text()
    seen["build_status_after_run"] = page.locator("#build-status").inner_text()  # cleared by Run
    seen["built_gallery_labels"] = page.locator("#results").inner_text()
    page.locator("#to-word textarea, #to-word input").first.fill("")
    _axe(page, "edit", seen)  # with results, history and the slider on the page
    seeds = set()
    for _ in range(3):
        page.locator("#random-seed").click()
        page.wait_for_timeout(200)
        seeds.add(page.locator("#seed input").input_value())
    seen["random_seeds"] = sorted(seeds)
    page.locator("#seed input").fill("0")
    # the keyboard: a visible focus ring, and Ctrl+Enter runs the edit
    page.locator("#caption textarea").focus()
    page.keyboard.press("Tab")
    seen["focus_ring"] = page.evaluate("getComputedStyle(document.activeElement).outlineWidth")
    _choose(page, ["horse2zebra"])
    page.locator("#caption textarea").focus()
    entries = page.locator("#history img").count()
    page.keyboard.press("Control+Enter")  # done when the history holds one more entry (the line may say 'reused' already)
    page.wait_for_function(f"document.querySelectorAll('#history img').length > {entries}", timeout=120_000)
    page.wait_for_function("!document.querySelector('#run').disabled", timeout=30_000)
    seen["ctrl_enter_status"] = page.locator("#edit-status").inner_text()
    # an edit's PNG dropped on "load the settings": the settings filled, the photo replaced only when asked
    dropped = Path(image).with_name("from-the-gallery.png")
    dropped.write_bytes(page.request.get(page.locator("#results img").nth(2).get_attribute("src")).body())  # horse2zebra
    photo_before = page.locator("#photo img").first.get_attribute("src")
    page.locator("#settings-png input[type=file]").set_input_files(str(dropped))
    try:
        page.locator("#edit-status").get_by_text("loaded the settings").wait_for(timeout=30_000)
    except Exception:
        _shot(page, out, "settings-not-loaded.png", seen)
        raise SystemExit(f"no settings loaded; beside Run: {page.locator('#edit-status').inner_text()!r}; "
                         f"dropped {len(dropped.read_bytes())} bytes")
    seen["settings_status"] = page.locator("#edit-status").inner_text()
    seen["settings_photo_kept"] = page.locator("#photo img").first.get_attribute("src") == photo_before
    page.locator("#use-png").click()
    page.locator("#edit-status").get_by_text("the dropped picture is the photo now").wait_for(timeout=30_000)
    seen["settings_photo_replaced"] = page.locator("#photo img").first.get_attribute("src") != photo_before
    seen["settings_offer_after"] = page.locator("#use-png").is_visible()
    _first_run_example(page, out, seen)


def _first_run_example(page, out: Path, seen: dict) -> None:
    """One click: a generated picture of a direction's source concept, edited with it."""
    page.get_by_role("tab", name="Edit").click()
    # Run without a photo marks the photo box; the example's photo takes the mark away
    page.locator("#photo").get_by_role("button", name="Remove Image").click()
    page.locator("#run").click()
    pill = page.get_by_text("upload or generate a photo first")
    pill.first.wait_for(timeout=30_000)
    seen["photo_pill_before_example"] = pill.count()
    page.locator("#example").click()
    page.locator("#edit-status").get_by_text("generated picture").wait_for(timeout=120_000)
    page.wait_for_function("!document.querySelector('#run').disabled", timeout=30_000)
    seen["photo_pill_after_example"] = pill.count()
    seen["example_status"] = page.locator("#edit-status").inner_text()
    seen["example_caption"] = page.locator("#caption textarea").input_value()
    seen["example_directions"] = page.locator("#directions").inner_text()
    seen["example_gallery_labels"] = page.locator("#results").inner_text()
    _shot(page, out, "first-run-example.png", seen)


def _pick(page, box: str, name: str) -> None:
    page.locator(f"{box} input").fill(name)
    page.locator(f"{box} input").press("Enter")
    page.keyboard.press("Escape")


def _small_things(page, out: Path, seen: dict) -> None:
    """A clicked sentence row fills the id box; the export list says what each name is; the
    compose grid takes saved names and loses its last row on request."""
    _pick(page, "#concept", "horse")
    page.wait_for_function("document.querySelector('#sentences').innerText.includes('horse')", timeout=30_000)
    cells = page.locator("#sentences [role=gridcell]")  # row by row: id, sentence
    seen["clicked_sentence_row"] = [cells.nth(2).inner_text(), cells.nth(3).inner_text()]
    seen["sentence_id_column_px"] = cells.nth(2).bounding_box()["width"]
    cells.nth(3).click()  # the second row's sentence
    page.wait_for_function("document.querySelector('#sentence-id input').value !== '0'", timeout=30_000)
    seen["sentence_id_box"] = page.locator("#sentence-id input").input_value()
    _shot(page, out, "sentence-row-clicked.png", seen)
    page.locator("#export-name input").click()
    seen["export_choices"] = page.locator("[role=listbox]").inner_text()
    page.keyboard.press("Escape")
    _axe(page, "bank", seen)
    # a mistake on the Bank tab: one line beside the button, the sentences table as it was
    rows_before = page.locator("#sentences [role=gridcell]").count()
    page.locator("#remove-concept").click()
    page.wait_for_function("document.querySelector('#bank-status textarea').value.includes(\"type the concept's\")",
                           timeout=30_000)
    seen["bank_mistake"] = page.locator("#bank-status textarea").input_value()
    seen["bank_mistake_rows"] = (rows_before, page.locator("#sentences [role=gridcell]").count())
    seen["bank_mistake_pills"] = sum(page.locator(box).get_by_text("Error", exact=True).count()
                                     for box in ("#sentences", "#bank-status", "#concepts"))
    _shot(page, out, "bank-mistake.png", seen)
    page.get_by_role("tab", name="Directions").click()
    # a mistake on the Directions tab: saving over a name keeps the previewed text and plot
    _pick(page, "#source", "horse")
    _pick(page, "#target", "zebra")
    page.locator("#preview").click()
    page.wait_for_function("document.querySelector('#direction-text textarea').value.includes('horse -> zebra')",
                           timeout=120_000)  # the first plot imports matplotlib: slow on a loaded machine
    previewed = page.locator("#direction-text textarea").input_value()
    page.locator("#save-name textarea, #save-name input").first.fill("horse2zebra")
    page.locator("#save").click()
    page.locator("#direction-status").get_by_text("tick 'replace'").wait_for(timeout=30_000)
    seen["directions_mistake"] = page.locator("#direction-status").inner_text()
    seen["directions_mistake_kept"] = (page.locator("#direction-text textarea").input_value() == previewed,
                                       page.locator("#direction-plot img").count())
    seen["directions_mistake_pills"] = sum(page.locator(box).get_by_text("Error", exact=True).count()
                                           for box in ("#direction-text", "#direction-plot", "#direction-status"))
    _shot(page, out, "directions-mistake.png", seen)
    page.locator("#save-name textarea, #save-name input").first.fill("")
    _axe(page, "directions", seen)
    for name, weight in (("horse2zebra", "0.5"), ("zebra2horse", "0.25"), ("horse2zebra", "2")):
        _pick(page, "#compose-pick", name)
        page.locator("#compose-weight input").fill(weight)
        page.locator("#compose-add").click()
        page.wait_for_timeout(300)
    page.locator("#compose-drop").click()
    page.wait_for_timeout(300)
    cells = page.locator("#compose-rows [role=gridcell]")
    seen["compose_rows"] = [cells.nth(i).inner_text() for i in range(cells.count())]
    page.locator("#compose-name textarea, #compose-name input").first.fill("half-and-quarter")
    page.locator("#compose-save").click()
    page.wait_for_function("document.querySelector('#compose-status textarea').value.includes('half-and-quarter')",
                           timeout=30_000)
    seen["composed"] = page.locator("#compose-status textarea").input_value()
    _shot(page, out, "composed.png", seen)
    page.locator("#compose-drop").click()  # another sum under the same name: asked, not replaced
    page.wait_for_timeout(300)
    page.locator("#compose-save").click()
    page.wait_for_function("document.querySelector('#compose-status textarea').value.includes(\"tick 'replace'\")",
                           timeout=30_000)
    seen["save_over_asks"] = page.locator("#compose-status textarea").input_value()
    _shot(page, out, "save-over-asks.png", seen)
    page.locator("#compose-replace input").check()
    page.locator("#compose-save").click()
    page.wait_for_function("document.querySelector('#compose-status textarea').value.includes('(version 2)')",
                           timeout=30_000)
    replaced = page.locator("#compose-status textarea").input_value().splitlines()
    seen["replaced"], seen["replaced_sum"] = replaced[0], replaced[-2].strip()
    page.get_by_role("tab", name="Bank").click()


def _long_job_cancelled(page, out: Path, seen: dict) -> None:
    """A long job: one bar with its phase and time left, Run disabled; Cancel stops it, the
    earlier results stay, and the next job runs."""
    page.locator("#steps input").fill("400")
    page.locator("#run").click()
    page.get_by_text("inverting (1 of 2): step").first.wait_for(timeout=60_000)
    page.get_by_text("s left").first.wait_for(timeout=60_000)
    seen["run_disabled_while_running"] = page.locator("#run").is_disabled()
    seen["progress_texts"] = page.get_by_text("inverting (1 of 2): step").count()
    _shot(page, out, "progress.png", seen)
    page.locator("#cancel").click()
    page.locator("#edit-status").get_by_text("cancelled at").wait_for(timeout=60_000)
    page.wait_for_function("!document.querySelector('#run').disabled", timeout=30_000)
    seen["cancel_status"] = page.locator("#edit-status").inner_text()
    seen["cancel_gallery_labels"] = page.locator("#results").inner_text()
    _shot(page, out, "cancelled.png", seen)
    seen["cancel_label_after"] = page.locator("#cancel").inner_text()
    # Cancel the moment it is enabled, while the job may still be starting: never lost, three times
    seen["early_cancels"] = []
    for _ in range(3):
        page.locator("#run").click()
        page.wait_for_function("!document.querySelector('#cancel').disabled", timeout=30_000)
        page.locator("#cancel").click()
        page.locator("#edit-status").get_by_text("cancelled at").wait_for(timeout=60_000)
        page.wait_for_function("!document.querySelector('#run').disabled", timeout=30_000)
        seen["early_cancels"].append(page.locator("#edit-status").inner_text())
    page.locator("#steps input").fill(STEPS)


def _cli(*args: str) -> list:
    done = subprocess.run([sys.executable, "-m", "direction_bank.cli", *args], capture_output=True, text=True)
    return [done.returncode, done.stderr[-300:]]


def _lists_follow_the_bank(page, out: Path, seen: dict) -> None:
    """What the CLI saves, adds and removes while the page is open shows at the next tab."""
    seen["cli"] = [_cli("diff", "horse", "zebra", "--save", "from-the-cli"),
                   _cli("add-concept", "cat", "-n", "4", "--generator", "template")]
    page.get_by_role("tab", name="Directions").click()
    page.wait_for_function("document.querySelector('#saved-directions').innerText.includes('from-the-cli')",
                           timeout=30_000)
    page.get_by_role("tab", name="Edit").click()
    page.locator("#directions input").click()
    seen["direction_choices"] = page.locator("[role=listbox]").inner_text()
    page.keyboard.press("Escape")
    page.get_by_role("tab", name="Bank").click()
    page.locator("#concepts").get_by_text("cat").first.wait_for(timeout=30_000)
    seen["concepts_with_cat"] = page.locator("#concepts").inner_text()
    seen["cli"].append(_cli("remove", "cat"))
    page.get_by_role("tab", name="Directions").click()
    page.get_by_role("tab", name="Bank").click()
    page.wait_for_function("!document.querySelector('#concepts').innerText.includes('cat')", timeout=30_000)
    seen["concepts_after_cli"] = page.locator("#concepts").inner_text()
    _shot(page, out, "lists-follow.png", seen)


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
    if auth is not None:  # the login variants check the edit through the login; the rest is the same app's
        return
    import zipfile

    with zipfile.ZipFile(archive) as opened:  # a downloaded edit, dropped back on the page
        name = next(n for n in opened.namelist() if n.endswith(".zebra2horse.png"))
        dropped = Path(image).with_name("dropped.png")
        dropped.write_bytes(opened.read(name))
    loaded = client.predict(handle_file(str(dropped)), api_name="/settings_from_png")
    seen["loaded_settings"] = [loaded[0], loaded[1], *loaded[2:8], loaded[-1]]
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

    def login_from(source: str, password: str) -> int:
        """A login sent from another loopback address (the server on 0.0.0.0 sees 127.0.0.2)."""
        import http.client

        host, port = urllib.parse.urlsplit(url).hostname, urllib.parse.urlsplit(url).port
        connection = http.client.HTTPConnection(host, port, timeout=30, source_address=(source, 0))
        body = urllib.parse.urlencode({"username": auth[0], "password": password})
        connection.request("POST", "/login", body, {"Content-Type": "application/x-www-form-urlencoded"})
        return connection.getresponse().status

    started = time.monotonic()
    wrong = [login(f"guess{i}") for i in range(11)]
    seen = {"wrong": wrong, "seconds": time.monotonic() - started, "right_after": login(auth[1])}
    if urllib.parse.urlsplit(url).hostname == "127.0.0.1":  # the owner elsewhere is not locked out
        seen["right_from_elsewhere"] = login_from("127.0.0.2", auth[1])
    return seen


def main() -> None:
    out, image, port, part = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
    extra = sys.argv[5:]
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
        if part == "edit":
            drive_browser(url, image, out, seen, _edit_tab)
        elif part == "tabs":
            drive_browser(url, image, out, seen, _the_other_tabs)
            drive_client(url, image, seen, auth)
        else:
            import urllib.request

            try:
                urllib.request.urlopen(url + "config", timeout=10)
                seen["config_without_login"] = 200
            except urllib.error.HTTPError as error:
                seen["config_without_login"] = error.code
            drive_client(url, image, seen, auth)
            seen["logins"] = try_logins(url, auth)
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
        seen["server_stderr"] = stderr
        (out / "seen.json").write_text(json.dumps(seen, indent=2, default=str))


if __name__ == "__main__":
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    main()
