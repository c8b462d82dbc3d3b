"""`soul gallery` in a real browser: headless Chromium, driven by Playwright."""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest

from soulcli.fake302 import Fake302
from tests.conftest import run_soul
from tests.test_gallery import HOSTILE, generate

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Chromium (apt-get install chromium)"
)
# As root in a container, and with nothing of Google's reachable: no sandbox, and none
# of the background requests Chromium makes on its own.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


class Visit:
    """One page opened in a fresh browser context, with what it asked for and any dialog."""

    def __init__(self, browser: Any, page_path: Path) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 3000})
        self.context.grant_permissions(["clipboard-read", "clipboard-write"])
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("dialog", self._dialog)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.goto(page_path.as_uri())
        self.page.wait_for_load_state("load")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def visible_prompts(self) -> list[str]:
        return [
            t.strip() for t in self.page.locator("article.card:visible .prompt").all_inner_texts()
        ]

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def ledger_of_four(fake: Fake302, tmp_path: Path) -> Path:
    """A gallery of a sweep and three tasks (one hostile, one with an nsfw image)."""
    pics = tmp_path / "my pics #1 'q' %20"  # links must survive spaces, # and quotes
    result = run_soul(
        "sweep", "a fox", "--styles", "Tokyo,Y2K", "--seed", "5", "-o", str(tmp_path / "sweep"),
        "--no-show", fake=fake,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    generate(fake, pics, "a dog in the rain", "-s", "Tokyo", "--seed", "7")
    generate(fake, pics, HOSTILE, "--negative", "<img src=x onerror=alert(2)>")
    fake.settings.outcomes = ["completed", "completed", "nsfw", "completed"]
    generate(fake, pics, "a red kite", "-s", "Y2K")
    result = run_soul("gallery", "-o", str(tmp_path / "gal"))
    assert result.code == 0, result.stderr
    return Path(result.lines[0])


def test_cards_thumbnails_and_links_load_and_nothing_leaves_file(
    browser: Any, ledger_of_four: Path
) -> None:
    visit = Visit(browser, ledger_of_four)
    page = visit.page
    assert page.locator("article.card").count() == 4
    assert page.locator("article.sweep").count() == 1
    assert visit.visible_prompts() == ["a red kite", HOSTILE, "a dog in the rain", "a fox"]
    assert (
        page.locator("#totals")
        .inner_text()
        .startswith("4 of 4 cards · 5 tasks · 19 images · 0.5 PTC spent")
    )
    # Every thumbnail decoded: loaded with a real width, none broken.
    page.wait_for_function("[...document.images].every((img) => img.complete)")
    widths = page.eval_on_selector_all("img", "imgs => imgs.map((img) => img.naturalWidth)")
    assert len(widths) == 13 and min(widths) > 0
    assert page.locator("figure.missing").inner_text().strip() == "#3 · nsfw"
    # Each thumbnail opens its full image, a file that is there.
    for href in page.eval_on_selector_all("figure a", "links => links.map((a) => a.href)"):
        assert href.startswith("file:///") and Path(unquote(urlparse(href).path)).is_file()
    visit.page.locator("figure a").first.click()
    page.wait_for_url("**/*.png")
    assert [u for u in visit.requests if not u.startswith("file:")] == []
    assert visit.dialogs == [] and visit.errors == []
    visit.close()


def test_the_hostile_prompt_is_shown_as_text_and_runs_nothing(
    browser: Any, ledger_of_four: Path
) -> None:
    visit = Visit(browser, ledger_of_four)
    card = visit.page.locator("article.card", has_text="quoted")
    assert card.locator(".prompt").inner_text() == HOSTILE
    assert card.locator(".negative").inner_text() == "not: <img src=x onerror=alert(2)>"
    assert visit.page.locator("article script, article b, article img[src='x']").count() == 0
    visit.page.wait_for_timeout(200)  # time for an injected handler to fire, had there been one
    assert visit.dialogs == [] and visit.errors == []
    visit.close()


def test_the_search_box_and_the_style_filter_narrow_the_cards(
    browser: Any, ledger_of_four: Path
) -> None:
    visit = Visit(browser, ledger_of_four)
    page = visit.page
    page.fill("#search", "RAIN dog")
    assert visit.visible_prompts() == ["a dog in the rain"]
    assert page.locator("#totals").inner_text().startswith("1 of 4 cards · 1 task · 4 images")
    page.fill("#search", "fox")  # the sweep: 2 tasks, 8 images, 0.2 PTC
    assert (
        page.locator("#totals")
        .inner_text()
        .startswith("1 of 4 cards · 2 tasks · 8 images · 0.2 PTC spent")
    )
    page.fill("#search", "")
    page.select_option("#style", label="Y2K")  # the kite, and the sweep with a Y2K tile
    assert visit.visible_prompts() == ["a red kite", "a fox"]
    page.fill("#search", "kite")
    assert visit.visible_prompts() == ["a red kite"]
    page.fill("#search", "no such thing")
    assert visit.visible_prompts() == []
    assert page.locator("#nomatch").is_visible()
    page.press("#search", "Enter")  # a search box in a form: Enter must not reload the page
    assert page.locator("#search").input_value() == "no such thing"
    visit.close()


def test_the_copy_button_copies_the_command_that_makes_the_card_again(
    browser: Any, ledger_of_four: Path, fake: Fake302
) -> None:
    visit = Visit(browser, ledger_of_four)
    card = visit.page.locator("article.card", has_text="a dog in the rain")
    image = card.locator("figure a").first.get_attribute("title")
    button = card.locator("button.copy")
    button.click()
    visit.page.wait_for_function("document.activeElement.textContent === 'Copied'")
    copied = visit.page.evaluate("navigator.clipboard.readText()")
    assert image is not None and copied == f"soul generate --like {shlex.quote(image)}"
    again = run_soul(*shlex.split(copied)[1:], "--dry-run", "--json", fake=fake)
    assert again.code == 0, again.stderr
    assert '"prompt": "a dog in the rain"' in again.stdout and '"seed": 7' in again.stdout
    visit.close()


def test_the_page_refuses_anything_from_outside_its_folder(
    browser: Any, ledger_of_four: Path
) -> None:
    """Were some text not escaped, the Content-Security-Policy would still stop it."""
    import http.server
    import threading

    hits: list[str] = []

    class Counter(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Counter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    remote = f"http://127.0.0.1:{server.server_address[1]}"
    visit = Visit(browser, ledger_of_four)
    try:
        blocked = visit.page.evaluate(
            """async (remote) => {
                const seen = [];
                document.addEventListener("securitypolicyviolation", (e) =>
                    seen.push(e.effectiveDirective));
                document.body.insertAdjacentHTML("beforeend",
                    `<img src="${remote}/img.png"><link rel="stylesheet" href="${remote}/s.css">` +
                    `<iframe src="${remote}/frame"></iframe>`);
                const script = document.createElement("script");
                script.src = remote + "/s.js";
                document.body.appendChild(script);
                const inline = document.createElement("script");
                inline.textContent = "window.ran = true";
                document.body.appendChild(inline);
                try { await fetch(remote + "/fetch"); } catch (error) { seen.push("no fetch"); }
                await new Promise((done) => setTimeout(done, 300));
                return [seen.sort(), window.ran === true];
            }""",
            remote,
        )
    finally:
        visit.close()
        server.shutdown()
    directives, inline_ran = blocked
    assert hits == [] and not inline_ran
    for directive in ("img-src", "style-src-elem", "frame-src", "script-src-elem", "connect-src"):
        assert directive in directives, directives
