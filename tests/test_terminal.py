"""As a person sees it: the spinner in a real terminal (tmux), and completion in bash, zsh, fish."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from soulcli.fake302 import Fake302
from tests.conftest import SENTINEL_KEY, SOUL

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Terminal:
    """A tmux pane of a given size on a private tmux server."""

    def __init__(self, command: list[str], *, width: int, env: dict[str, str]) -> None:
        self.socket = f"soul-test-{uuid.uuid4().hex[:8]}"
        self.env = env
        self._tmux("new-session", "-d", "-s", "t", "-x", str(width), "-y", "30", *command)

    def _tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return done.stdout

    def type(self, keys: str, *, enter: bool = False) -> None:
        self._tmux("send-keys", "-t", "t", "-l", keys)
        if enter:
            self._tmux("send-keys", "-t", "t", "Enter")

    def tab(self) -> None:
        self._tmux("send-keys", "-t", "t", "Tab")

    def screen(self, *, escapes: bool = False) -> str:
        return self._tmux("capture-pane", "-p", "-J", "-t", "t", *(["-e"] if escapes else []))

    def wait_for(
        self,
        condition: Callable[[str], bool],
        what: str,
        *,
        escapes: bool = False,
        timeout: float = 20,
    ) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen(escapes=escapes)
            if condition(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} never appeared; the screen was:\n{text}")
            time.sleep(0.1)

    def cursor_line(self) -> str:
        """The text of the line the cursor is on (where a shell's prompt and input are)."""
        row = int(self._tmux("display-message", "-p", "-t", "t", "#{cursor_y}").strip() or 0)
        lines = self._tmux("capture-pane", "-p", "-t", "t").split("\n")
        return lines[row].rstrip() if row < len(lines) else ""

    def wait_for_prompt(self, prompt: str) -> None:
        """Wait until the input line is empty again: keys typed before the shell has
        handled a Ctrl-C or Ctrl-U can be thrown away with the old line."""
        deadline = time.monotonic() + 20
        while self.cursor_line() != prompt:
            if time.monotonic() > deadline:
                raise AssertionError(f"no empty prompt {prompt!r}; the screen:\n{self.screen()}")
            time.sleep(0.05)

    def close(self) -> None:
        self._tmux("kill-server")


def terminal_env(fake: Fake302 | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOUL_", "TMUX"))}
    env.update(
        PATH=f"{SOUL.parent}:/usr/bin:/bin",
        TERM="xterm-256color",
        HOME=env.get("HOME", "/root"),
        SOUL_CONFIG_DIR=os.environ["SOUL_CONFIG_DIR"],
        SOUL_DATA_DIR=os.environ["SOUL_DATA_DIR"],
    )
    if fake is not None:
        env.update(SOUL_BASE_URL=fake.base_url, SOUL_API_KEY=fake.settings.api_key)
    env.update(extra)
    return env


@pytest.fixture
def slow_fake(fake: Fake302) -> Fake302:
    fake.settings.queue_seconds = 2.0
    fake.settings.run_seconds = 2.0
    return fake


@pytest.fixture
def shell_in_tmux() -> Iterator[Callable[..., Terminal]]:
    opened: list[Terminal] = []

    def open_terminal(command: list[str], *, width: int = 100, **env: str) -> Terminal:
        terminal = Terminal(command, width=width, env=terminal_env(None, **env))
        opened.append(terminal)
        return terminal

    yield open_terminal
    for terminal in opened:
        terminal.close()


SGR_COLOUR = re.compile(r"\x1b\[[0-9;]*(3[0-9]|9[0-7]|38;)[0-9;]*m")


@pytest.mark.parametrize(
    ("width", "no_color"),
    [(100, False), (40, False), (100, True)],
    ids=["wide", "narrow-40", "NO_COLOR"],
)
def test_spinner_shows_state_time_price_and_task_then_clears(
    slow_fake: Fake302, tmp_path: Path, width: int, no_color: bool
) -> None:
    out = tmp_path / "pics"
    env = terminal_env(slow_fake, **({"NO_COLOR": "1"} if no_color else {}))
    terminal = Terminal(["bash", "--norc", "--noprofile"], width=width, env=env)
    try:
        terminal.type(f"soul generate 'a dog' -o {out}; echo EXIT=$?", enter=True)
        queued = terminal.wait_for(
            lambda s: "queued, 0 of 4 done" in s, "the queued spinner", escapes=True
        )
        task_id = next(iter(slow_fake.state.tasks))
        if width >= 100:
            assert f"task {task_id}" in queued and "0.1 PTC" in queued
        assert re.search(r"[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]", queued), "no spinner frame"
        if no_color:
            assert not SGR_COLOUR.search(queued), "colour despite NO_COLOR"
        else:
            assert SGR_COLOUR.search(queued), "the spinner should be coloured"
        terminal.wait_for(lambda s: "in progress" in s, "the in-progress spinner")
        final = terminal.wait_for(lambda s: "EXIT=0" in s, "the end of the run")
        assert "queued" not in final and "in progress" not in final  # the spinner is gone
        assert all(f"{task_id}_{i}.png" in final for i in range(1, 5))
        assert SENTINEL_KEY not in final
        for line in final.splitlines():
            assert "\x1b" not in line
    finally:
        terminal.close()


def test_the_fetch_spinner_counts_from_the_submission(slow_fake: Fake302, tmp_path: Path) -> None:
    import sqlite3

    slow_fake.settings.never_finish = True
    env = terminal_env(slow_fake)
    submitted = subprocess.run(
        [str(SOUL), "generate", "a dog", "--no-wait", "-o", str(tmp_path / "pics")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    task_id = submitted.stdout.strip()
    with sqlite3.connect(Path(env["SOUL_DATA_DIR"]) / "tasks.db") as db:
        db.execute("UPDATE tasks SET created_at = created_at - 600")  # sent ten minutes ago
    terminal = Terminal(["bash", "--norc", "--noprofile"], width=120, env=env)
    try:
        terminal.type("soul fetch; echo EXIT=$?", enter=True)
        screen = terminal.wait_for(lambda s: f"task {task_id}" in s and "PTC" in s, "the spinner")
        assert re.search(r" · 10m[01][0-9]s · 0\.1 PTC · task ", screen), screen
    finally:
        terminal.close()


def test_ctrl_c_in_a_terminal_prints_how_to_resume(slow_fake: Fake302, tmp_path: Path) -> None:
    slow_fake.settings.never_finish = True
    terminal = Terminal(["bash", "--norc", "--noprofile"], width=120, env=terminal_env(slow_fake))
    try:
        terminal.type(f"soul generate 'a dog' -o {tmp_path}; echo EXIT=$?", enter=True)
        terminal.wait_for(lambda s: "queued" in s, "the spinner")
        terminal._tmux("send-keys", "-t", "t", "C-c")
        screen = terminal.wait_for(
            lambda s: re.search(r"EXIT=\d", s) is not None, "the end of the run"
        )
        assert "EXIT=130" in screen and "soul fetch" in screen and "Traceback" not in screen
    finally:
        terminal.close()


SHELLS = {
    "bash": (["bash", "--norc", "--noprofile"], "source {script}"),
    "zsh": (["zsh", "-f"], "autoload -U compinit && compinit -u && source {script}"),
    "fish": (["fish", "--no-config"], "source {script}"),
}


@pytest.mark.parametrize("shell", list(SHELLS))
def test_completion_in_a_real_shell(shell: str, shell_in_tmux: Callable[..., Terminal]) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    command, setup = SHELLS[shell]
    script = ROOT / "completions" / f"soul.{shell}"
    terminal = shell_in_tmux(command, width=160)
    terminal.type(setup.format(script=script) + "; clear; echo READY", enter=True)
    terminal.wait_for(lambda s: s.startswith("READY"), f"{shell} to start")
    terminal.wait_for(lambda s: len(s.strip().splitlines()) >= 2, f"{shell}'s prompt")
    prompt = terminal.cursor_line()  # the prompt with nothing typed after it

    terminal.type("soul gen")
    terminal.tab()
    terminal.wait_for(lambda s: "soul generate" in s, f"{shell} completing 'soul gen'")
    terminal._tmux("send-keys", "-t", "t", "C-u" if shell != "fish" else "C-c")
    terminal.wait_for_prompt(prompt)

    terminal.type("soul generate --ar ")
    terminal.tab()
    if shell == "bash":
        terminal.tab()  # bash lists the candidates on the second Tab
    terminal.wait_for(lambda s: "16:9" in s and "9:16" in s, f"{shell} listing ratios")
    terminal._tmux("send-keys", "-t", "t", "C-c")
    terminal.wait_for_prompt(prompt)

    terminal.type("soul generate --style Tok")
    terminal.tab()
    # Every shell shows the space escaped: the name stays one shell word.
    expected = "Tokyo\\ streetstyle"
    screen = terminal.wait_for(lambda s: expected in s, f"{shell} completing a style")
    terminal.type(" 'a dog' --dry-run --json", enter=True)
    terminal.wait_for(lambda s: '"cost_ptc"' in s, f"{shell} running the completed line")
    assert "unknown style" not in terminal.screen() and "error" not in screen


def test_batch_progress_display_in_a_terminal(slow_fake: Fake302, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a dog\na cat\na bird\n")
    env = terminal_env(slow_fake)
    terminal = Terminal(["bash", "--norc", "--noprofile"], width=120, env=env)
    try:
        terminal.type(
            f"soul batch {prompts} -o {tmp_path / 'out'} -c 2 >/dev/null; echo EXIT=$?", enter=True
        )
        live = terminal.wait_for(
            lambda s: "running" in s and "line 1:" in s, "the live batch display"
        )
        assert "0 done · 0 failed · 2 running" in live
        assert "batch" in live and "PTC spent" in live
        final = terminal.wait_for(
            lambda s: re.search(r"EXIT=\d", s) is not None, "the end of the batch", timeout=40
        )
        assert "EXIT=0" in final
        assert "3 lines" in final and re.search(r"completed +3", final)
        assert "running" not in final  # the live display is gone, the summary stays
    finally:
        terminal.close()


def test_batch_paths_go_to_a_redirected_stdout_not_the_display(
    slow_fake: Fake302, tmp_path: Path
) -> None:
    slow_fake.settings.queue_seconds = 0.5
    slow_fake.settings.run_seconds = 0.5
    prompts = tmp_path / "p.txt"
    prompts.write_text("a dog\na cat\n")
    out = tmp_path / "paths.txt"
    terminal = Terminal(["bash", "--norc", "--noprofile"], width=120, env=terminal_env(slow_fake))
    try:
        terminal.type(
            f"soul batch {prompts} -o {tmp_path / 'pics'} > {out}; echo EXIT=$?", enter=True
        )
        final = terminal.wait_for(lambda s: "EXIT=0" in s, "the end of the batch")
        assert ".png" not in final  # the display (stderr) showed no data
        paths = out.read_text().splitlines()
        assert len(paths) == 8 and all(Path(p).is_file() for p in paths)
    finally:
        terminal.close()
