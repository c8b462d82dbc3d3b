"""Every screen at 40, 80 and 120 columns in a real terminal (tmux): what fits and what goes."""

from __future__ import annotations

import os
import pty
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from soulcli.catalog import load_styles
from soulcli.fake302 import Fake302
from tests.conftest import SOUL, run_soul
from tests.test_terminal import Terminal, terminal_env

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
WIDTHS = [40, 80, 120]
SPINNER = re.compile(r"[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]")


@pytest.fixture
def shell() -> Iterator[list[Terminal]]:
    opened: list[Terminal] = []
    yield opened
    for terminal in opened:
        terminal.close()


def open_shell(opened: list[Terminal], width: int, env: dict[str, str]) -> Terminal:
    terminal = Terminal(["bash", "--norc", "--noprofile"], width=width, env=env)
    opened.append(terminal)
    terminal.type("PS1='$ '; clear", enter=True)
    terminal.wait_for(lambda s: s.strip() == "$", "the prompt")
    return terminal


def rows_of(screen: str) -> list[str]:
    """The screen's lines; capture-pane -J joins a wrapped line, so its length shows."""
    return [line.rstrip() for line in screen.splitlines()]


def finished(screen: str) -> bool:
    return re.search(r"EXIT=\d+", screen) is not None


@pytest.mark.parametrize("width", WIDTHS)
def test_styles_keep_every_name_whole_and_drop_ids_and_links_first(
    width: int, shell: list[Terminal]
) -> None:
    env = terminal_env(None, PAGER="cat")  # the table itself here; paging is tested below
    terminal = open_shell(shell, width, env)
    terminal.type("soul styles --search in; echo EXIT=$?", enter=True)
    screen = terminal.wait_for(finished, "soul styles")
    assert "EXIT=0" in screen
    lines = rows_of(screen)
    found = [s for s in load_styles() if "in" in s.name.lower()]
    assert len(found) == 10
    for style in found:
        assert any(line.startswith(style.name) for line in lines), f"{style.name} cut at {width}"
    header = next(line for line in lines if line.startswith("Name"))
    assert "720p" in header and "1080p" in header  # the prices stay at every width
    if width >= 80:
        assert "ID" in header
        assert all(style.id in screen for style in found)
    else:
        assert "ID" not in header and "Preview" not in header
    if width >= 120:
        assert "Preview" in header
    assert "cdn.higgsfield.ai" not in screen  # previews are links, not wrapped URLs
    assert all(len(line) <= width for line in lines)


@pytest.mark.skipif(shutil.which("less") is None, reason="less is not installed")
def test_a_long_list_goes_through_the_pager_and_q_gives_the_prompt_back(
    shell: list[Terminal],
) -> None:
    env = terminal_env(None)
    env.pop("PAGER", None)
    env.pop("LESS", None)
    terminal = open_shell(shell, 80, env)  # 30 lines: 60 styles do not fit
    terminal.type("soul styles; echo EXIT=$?", enter=True)
    screen = terminal.wait_for(
        lambda s: rows_of(s)[-1].startswith(":") or "(END)" in s, "less waiting for a key"
    )
    assert "GENERAL" in screen and "EXIT=" not in screen
    terminal.type("q")
    assert "EXIT=0" in terminal.wait_for(finished, "the prompt after q")
    terminal.type("clear; soul styles | tail -n 1; echo EXIT=$?", enter=True)
    piped = terminal.wait_for(finished, "soul styles piped")
    assert "Graffiti" in piped and "EXIT=0" in piped  # no pager when piped


def test_previews_are_osc8_links_on_a_terminal_and_plain_urls_with_wide() -> None:
    def on_a_pty(*args: str) -> str:
        main, child = pty.openpty()
        env = terminal_env(None, PAGER="cat", COLUMNS="120", LINES="200")
        proc = subprocess.Popen([str(SOUL), *args], stdout=child, stderr=child, env=env)
        os.close(child)
        chunks = []
        while True:
            try:
                data = os.read(main, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        proc.wait(timeout=30)
        os.close(main)
        return b"".join(chunks).decode()

    tokyo = next(s for s in load_styles() if s.name == "Tokyo streetstyle")
    linked = on_a_pty("styles", "--search", "tokyo")
    assert "\x1b]8;id=" in linked and tokyo.preview_url in linked
    assert re.search(r"\x1b\]8;[^;]*;" + re.escape(tokyo.preview_url) + r"\x1b\\preview", linked)
    wide = on_a_pty("styles", "--search", "tokyo", "--wide")
    assert "\x1b]8;" not in wide and tokyo.preview_url in wide


@pytest.fixture
def three_tasks(fake: Fake302, tmp_path: Path) -> Fake302:
    for prompt in [
        "a dog in the rain",
        "a cat",
        "a lighthouse on a cliff at dusk with waves crashing on the rocks below",
    ]:
        assert run_soul("generate", prompt, "-s", "Tokyo", "-o", str(tmp_path), fake=fake).code == 0
    return fake


@pytest.mark.parametrize("width", WIDTHS)
def test_history_keeps_number_state_cost_and_prompt_at_every_width(
    width: int, three_tasks: Fake302, shell: list[Terminal]
) -> None:
    terminal = open_shell(shell, width, terminal_env(three_tasks))
    terminal.type("soul history; echo EXIT=$?", enter=True)
    lines = rows_of(terminal.wait_for(finished, "soul history"))
    header = next(line for line in lines if line.startswith("#"))
    table = lines[lines.index(header) : lines.index(header) + 5]
    assert all(len(line) <= width for line in table)
    assert re.match(r"#\s+.*State\s+.*Cost\s+.*Prompt", header), header
    rows = [line for line in lines if re.match(r"\d+  ", line)]
    assert [row.split()[0] for row in rows] == ["3", "2", "1"]
    assert all("completed" in row and " 0.1 " in row for row in rows)
    assert "a cat" in rows[1]
    lighthouse = rows[0]
    if width < 120:
        assert lighthouse.endswith("…")  # the prompt is cut, nothing else is
    if width >= 80:
        assert "Tokyo streetstyle" in header + lighthouse and "When" in header
    if width >= 120:
        assert "Seed" in header and "Ratio" in header
    assert any(line.startswith("3 tasks · spent 0.3 PTC") for line in lines)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_spinner_is_one_line_cut_to_the_width(
    width: int, fake: Fake302, tmp_path: Path, shell: list[Terminal]
) -> None:
    fake.settings.queue_seconds = 2.0
    fake.settings.run_seconds = 2.0
    terminal = open_shell(shell, width, terminal_env(fake))
    terminal.type(f"clear; soul generate 'a dog' -o {tmp_path}; echo EXIT=$?", enter=True)
    screen = terminal.wait_for(lambda s: SPINNER.search(s) is not None, "the spinner")
    spinning = next(line for line in rows_of(screen) if SPINNER.search(line))
    assert spinning.startswith(SPINNER.findall(spinning)[0])  # a line of its own, from column 0
    assert "queued, 0 of 4 done" in spinning or "in progress" in spinning
    assert len(spinning) <= width
    if width < 80:
        assert spinning.endswith("…")  # the task id went, nothing wrapped
    else:
        assert "0.1 PTC · task higgsfield_" in spinning
    assert "EXIT=0" in terminal.wait_for(finished, "the end of generate", timeout=30)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_batch_line_shows_n_of_total_time_and_spend_at_every_width(
    width: int, fake: Fake302, tmp_path: Path, shell: list[Terminal]
) -> None:
    fake.settings.queue_seconds = 2.0
    fake.settings.run_seconds = 2.0
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a dog\na cat\na lighthouse on a cliff at dusk with waves crashing\n")
    terminal = open_shell(shell, width, terminal_env(fake))
    terminal.type(
        f"soul batch {prompts} -o {tmp_path / 'out'} -c 2 >/dev/null; echo EXIT=$?", enter=True
    )
    screen = terminal.wait_for(lambda s: "line 2:" in s, "the live batch display")
    lines = rows_of(screen)
    head = next(line for line in lines if line.startswith("batch "))
    # The spend may still be 0 on a busy machine: a line shows before its POST returns.
    assert re.match(r"batch 0 of 3 · \d+s · \d+(\.\d+)? PTC spent", head), head
    task_lines = [line for line in lines if line.startswith("  line ")]
    assert all(len(line) <= width for line in [head, *task_lines])
    assert len(task_lines) == 2  # one line each, never wrapped
    if width >= 120:
        assert "running" in head and "higgsfield_" in " ".join(task_lines)
    final = terminal.wait_for(finished, "the end of the batch", timeout=40)
    assert "EXIT=0" in final and "line 1:" not in final  # the display is gone


def test_on_a_terminal_generate_without_a_prompt_asks_for_one(shell: list[Terminal]) -> None:
    terminal = open_shell(shell, 80, terminal_env(None))
    terminal.type("soul generate; echo EXIT=$?", enter=True)  # stdin is the terminal: no wait
    screen = terminal.wait_for(finished, "soul generate without a prompt")
    assert "EXIT=2" in screen and "a prompt is required" in screen


def test_the_price_line_comes_before_the_confirmation_question(
    fake: Fake302, tmp_path: Path, shell: list[Terminal]
) -> None:
    env = terminal_env(fake)
    assert run_soul("config", "set", "confirm_above", "0.05", env=env).code == 0
    terminal = open_shell(shell, 120, env)
    pics = tmp_path / "pics"
    terminal.type(f"soul generate 'a dog' -o {pics}; echo EXIT=$?", enter=True)
    screen = terminal.wait_for(lambda s: "Go ahead?" in s, "the confirmation question")
    lines = rows_of(screen)
    asked = next(i for i, line in enumerate(lines) if "Go ahead?" in line)
    told = next(i for i, line in enumerate(lines) if line.startswith("soul: submitting"))
    assert told < asked and "0.1 PTC" in lines[told]
    assert fake.post_count() == 0  # nothing is sent while the question waits
    terminal.type("n", enter=True)
    screen = terminal.wait_for(finished, "the answer")
    assert "EXIT=15" in screen and "nothing was sent" in screen
    assert fake.post_count() == 0 and not pics.exists()  # a "no" leaves nothing behind


def test_config_list_and_doctor_wrap_at_spaces_on_a_narrow_terminal(
    fake: Fake302, shell: list[Terminal]
) -> None:
    terminal = open_shell(shell, 40, terminal_env(fake))
    texts = []
    for command in ["soul config list", "soul doctor"]:
        terminal.type(f"clear; {command}; echo EXIT=$?", enter=True)
        lines = rows_of(terminal.wait_for(finished, command))
        assert "EXIT=0" in lines
        shown = [line for line in lines if line and not line.startswith(("$ ", "EXIT="))]
        assert all(len(line) <= 40 for line in shown)  # -J would have joined a cut line
        texts.append(shown)
    listed, checked = texts
    assert any(line.startswith("                SOUL_API_KEY]") for line in listed)
    assert "[env SOUL_BASE_URL]" in " ".join(" ".join(listed).split())
    assert "key accepted (a made-up key is refused with 401)" in " ".join(" ".join(checked).split())
