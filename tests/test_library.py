"""`from soulcli import Soul`: the library keeps the CLI's guarantees, prints nothing, raises
typed errors, and imports neither typer nor rich."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from soulcli.fake302 import Fake302, FakeSettings
from tests.conftest import SENTINEL_KEY, run_soul, soul_env

SOULCLI = Path(__file__).resolve().parent.parent / "soulcli"
# The CLI's own modules: everything else is the core, which must not import them.
CLI_MODULES = {"cli", "launch", "ui", "tables", "options", "mcp_server", "terminal_images"}
FORBIDDEN = {"typer", "rich", "click", "soulcli.ui", "soulcli.cli", "soulcli.commands"}


def test_generate_saves_four_images_records_the_task_and_prints_nothing(
    fake: Fake302, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from soulcli import Result, Soul

    soul = Soul(api_key=fake.settings.api_key, base_url=fake.base_url)
    result = soul.generate("a dog in the rain", style="Tokyo", ar="16:9", out=tmp_path / "pics")
    assert isinstance(result, Result)
    assert result.status == "completed" and result.finished and result.missing == []
    assert len(result.images) == 4
    for path in result.images:
        assert isinstance(path, Path) and path.parent == tmp_path / "pics"
        assert path.read_bytes().startswith(b"\x89PNG")
        assert path.with_suffix(".json").is_file()  # the sidecar, as the CLI writes it
    assert result.cost_ptc == Decimal("0.1")
    assert result.style == "Tokyo streetstyle" and result.request is not None
    assert result.request.aspect_ratio == "16:9"
    assert fake.post_count() == 1
    body = json.loads(fake.requests("POST")[0].body)
    assert body["prompt"] == "a dog in the rain" and body["seed"] == result.seed
    # The ledger is the CLI's: `soul history` shows the library's task.
    shown = run_soul("history", "--json", fake=fake)
    rows = json.loads(shown.stdout)
    assert [row["task_id"] for row in rows] == [result.task_id]
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # a library never prints


def test_submit_then_wait_and_fetch_answers_from_the_ledger(fake: Fake302, tmp_path: Path) -> None:
    from soulcli import Soul, Task

    soul = Soul(api_key=fake.settings.api_key, base_url=fake.base_url, out_dir=tmp_path)
    task = soul.submit("a cat", name="cat", seed=7)
    assert isinstance(task, Task) and task.task_id.startswith("higgsfield_")
    assert task.out_dir == tmp_path.resolve() and task.request.seed == 7
    result = soul.wait(task)
    assert [p.name for p in result.images] == [f"cat_{i}.png" for i in range(1, 5)]
    polls = fake.poll_count()
    # Its images are on disk: fetch reads the ledger, not the network.
    again = soul.fetch(task.task_id)
    assert again.images == result.images and again.status == "completed"
    assert fake.poll_count() == polls
    assert soul.history(limit=5)[0].remote_id == task.task_id
    assert fake.post_count() == 1


def test_a_partial_task_is_a_result_not_an_exception(tmp_path: Path) -> None:
    from soulcli import Soul

    settings = FakeSettings(
        api_key=SENTINEL_KEY,
        queue_seconds=0.1,
        run_seconds=0.2,
        outcomes=["completed", "completed", "completed", "nsfw"],
    )
    with Fake302(settings) as fake:
        soul = Soul(api_key=SENTINEL_KEY, base_url=fake.base_url)
        result = soul.generate("a beach", out=tmp_path)
    assert result.status == "partial" and len(result.images) == 3
    assert [(m.index, m.status) for m in result.missing] == [(4, "nsfw")]


def test_errors_are_typed_and_nothing_is_sent(fake: Fake302, tmp_path: Path) -> None:
    from soulcli import AuthError, ConfigError, DownloadError, Soul, SoulError, UsageError

    soul = Soul(api_key=fake.settings.api_key, base_url=fake.base_url, out_dir=tmp_path)
    with pytest.raises(UsageError, match="unknown style"):
        soul.generate("a dog", style="Nonesuch Style")
    with pytest.raises(UsageError, match="aspect ratio"):
        soul.submit("a dog", ar="5:1")
    with pytest.raises(UsageError):
        soul.generate("   ")
    assert fake.post_count() == 0
    with pytest.raises(ConfigError, match="API key"):
        Soul(base_url=fake.base_url).generate("a dog", out=tmp_path)
    with pytest.raises(AuthError) as refused:
        Soul(api_key="sk-wrong-key-000000000000", base_url=fake.base_url).generate(
            "a dog", out=tmp_path
        )
    assert isinstance(refused.value, SoulError) and refused.value.exit_code == 4
    assert "sk-wrong" not in str(refused.value)
    assert fake.post_count() == 1  # the refused one: the server said 401, nothing was made
    blocker = tmp_path / "notes.txt"
    blocker.write_text("x")
    with pytest.raises(DownloadError, match=r"Not a directory; nothing was sent$"):
        soul.generate("a dog", out=blocker / "pics")
    assert fake.post_count() == 1


def test_the_key_never_shows_in_repr(fake: Fake302) -> None:
    from soulcli import Soul

    soul = Soul(api_key=SENTINEL_KEY, base_url=fake.base_url)
    assert SENTINEL_KEY not in repr(soul)
    # Nor in what a debugger or a crash reporter shows of its attributes.
    assert SENTINEL_KEY not in repr(vars(soul))
    assert soul.settings.api_key == SENTINEL_KEY


def test_settings_come_from_the_environment_like_the_cli(
    fake: Fake302, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from soulcli import Soul

    monkeypatch.setenv("SOUL_API_KEY", fake.settings.api_key)
    monkeypatch.setenv("SOUL_BASE_URL", fake.base_url)
    result = Soul(data_dir=tmp_path / "elsewhere").generate("a fox", out=tmp_path / "out")
    assert result.status == "completed"
    assert (tmp_path / "elsewhere" / "tasks.db").is_file()
    # A ledger of its own: the default one never saw this task.
    assert json.loads(run_soul("history", "--json", fake=fake).stdout) == []


def test_batch_yields_results_and_never_pays_twice(fake: Fake302, tmp_path: Path) -> None:
    from soulcli import Soul

    soul = Soul(api_key=fake.settings.api_key, base_url=fake.base_url)
    lines: list[str | dict[str, object]] = [
        "one",
        "two",
        {"prompt": "three", "quality": "1080p", "name": "third"},
    ]
    results = list(soul.batch(lines, out=tmp_path, concurrency=2))
    assert sorted(r.line or 0 for r in results) == [1, 2, 3]
    assert all(r.status == "completed" and len(r.images) == 4 for r in results)
    third = next(r for r in results if r.line == 3)
    assert third.cost_ptc == Decimal("0.2") and third.images[0].name == "third_1.png"
    assert fake.post_count() == 3
    # The same lines again: every result comes from the ledger; nothing is sent.
    again = list(soul.batch(lines, out=tmp_path, concurrency=2))
    assert sorted((r.line, r.status) for r in again) == [
        (1, "completed"),
        (2, "completed"),
        (3, "completed"),
    ]
    assert fake.post_count() == 3


def test_batch_over_max_cost_sends_nothing(fake: Fake302, tmp_path: Path) -> None:
    from soulcli import Soul, SoulError

    soul = Soul(api_key=fake.settings.api_key, base_url=fake.base_url)
    with pytest.raises(SoulError, match="above max_cost"):
        list(soul.batch(["a", "b", "c"], out=tmp_path, max_cost="0.2"))
    assert fake.post_count() == 0


def test_styles_and_prices_need_no_key() -> None:
    from soulcli import Soul, Style

    styles = Soul.styles()
    assert len(styles) == 60 and all(isinstance(s, Style) for s in styles)
    assert {s.name for s in Soul.styles("y2k")} == {"Y2K", "Y2K posters"}
    assert Soul.price("1080p", 3) == Decimal("0.6")
    assert Soul.price("basic") == Decimal("0.1")


def test_the_core_imports_neither_typer_nor_rich(fake: Fake302, tmp_path: Path) -> None:
    """Run the library in a fresh interpreter where typer, rich and click cannot load."""
    script = textwrap.dedent(
        f"""
        import importlib.abc, sys

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("typer", "rich", "click"):
                    raise ImportError("blocked: " + name)
                return None

        sys.meta_path.insert(0, Block())
        from soulcli import Soul
        soul = Soul(api_key={fake.settings.api_key!r}, base_url={fake.base_url!r})
        result = soul.generate("a lighthouse", out={str(tmp_path)!r})
        assert len(result.images) == 4, result
        assert [r.status for r in soul.batch(["x", "y"], out={str(tmp_path)!r})] == [
            "completed", "completed"]
        soul.fetch(result.task_id)
        soul.history()
        soul.styles("y2k")
        print("ok")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=soul_env(None),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "ok\n" and proc.stderr == ""


def test_no_core_module_imports_the_cli() -> None:
    """Static check of every import in the core, including lazy ones inside functions."""
    offenders = []
    for path in sorted(SOULCLI.glob("*.py")):
        if path.stem in CLI_MODULES:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
                    offenders.append(f"{path.name}: {name}")
    assert offenders == []


def test_importing_soulcli_loads_nothing_heavy() -> None:
    """`soul --help` imports the package: its public names load on first use only."""
    code = "import sys, soulcli; print(sorted(m for m in sys.modules if m.startswith('soulcli')))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip() == "['soulcli']"
    assert "Soul" in dir(__import__("soulcli"))


def test_ctrl_c_while_waiting_is_a_keyboard_interrupt_and_the_task_stays_in_the_ledger(
    tmp_path: Path,
) -> None:
    import signal
    import time

    settings = FakeSettings(api_key=SENTINEL_KEY, queue_seconds=0.1, never_finish=True)
    script = textwrap.dedent(
        f"""
        from soulcli import Soul
        soul = Soul(api_key={SENTINEL_KEY!r}, base_url=BASE)
        try:
            soul.generate("a slow one", out={str(tmp_path / "out")!r})
        except KeyboardInterrupt as stop:
            print(stop)
            raise SystemExit(130)
        """
    )
    with Fake302(settings) as fake:
        proc = subprocess.Popen(
            [sys.executable, "-c", f"BASE = {fake.base_url!r}\n" + script],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=soul_env(None),
        )
        deadline = time.monotonic() + 20
        while fake.poll_count() < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 130, err
        rows = json.loads(run_soul("history", "--json", fake=fake).stdout)
    assert "Traceback" not in err
    assert len(rows) == 1 and rows[0]["state"] == "submitted"
    assert rows[0]["task_id"].startswith("higgsfield_")
    assert rows[0]["task_id"] in out and "soul fetch" in out
    assert fake.post_count() == 1


def test_a_watcher_is_told_of_polls_and_the_download(fake: Fake302, tmp_path: Path) -> None:
    from soulcli import Soul, Watcher

    seen: list[str] = []

    class Recording(Watcher):
        def updated(self, snapshot: object) -> None:
            seen.append("poll")

        def downloading(self, task_id: str) -> None:
            seen.append(f"download {task_id}")

    soul = Soul(api_key=fake.settings.api_key, base_url=fake.base_url, watcher=Recording())
    result = soul.generate("a dog", out=tmp_path)
    assert "poll" in seen and seen[-1] == f"download {result.task_id}"
    assert seen.count("poll") == fake.poll_count()


def test_a_bad_batch_line_is_named_and_nothing_is_sent(fake: Fake302, tmp_path: Path) -> None:
    from soulcli import Soul, UsageError

    soul = Soul(api_key=fake.settings.api_key, base_url=fake.base_url)
    with pytest.raises(UsageError) as bad:
        list(soul.batch(["a cat", {"prompt": "a dog", "ar": "5:1"}], out=tmp_path))
    assert "1 bad line" in bad.value.message
    assert bad.value.hint is not None and "5:1" in bad.value.hint
    assert fake.post_count() == 0


def test_closing_a_batch_early_stops_it_and_the_rerun_pays_only_for_the_rest(
    fake: Fake302, tmp_path: Path
) -> None:
    from soulcli import Soul

    soul = Soul(api_key=fake.settings.api_key, base_url=fake.base_url)
    prompts = [f"prompt {n}" for n in range(1, 7)]
    batch = soul.batch(prompts, out=tmp_path, concurrency=1)
    first = next(batch)
    assert first.status == "completed"
    batch.close()  # the worker stops at its next safe point
    sent = fake.post_count()
    assert 1 <= sent <= 2
    rest = list(soul.batch(prompts, out=tmp_path, concurrency=3))
    assert sorted(r.line or 0 for r in rest) == [1, 2, 3, 4, 5, 6]
    assert all(r.status == "completed" for r in rest)
    assert fake.post_count() == 6  # no line was paid for twice


def test_a_warning_is_not_printed(
    fake: Fake302, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from soulcli import Soul

    (tmp_path / "dog_1.json").mkdir()  # the first sidecar cannot be written
    soul = Soul(api_key=fake.settings.api_key, base_url=fake.base_url)
    result = soul.generate("a dog", out=tmp_path, name="dog")
    assert result.status == "completed" and len(result.images) == 4
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_a_submitted_task_is_not_held_from_soul_fetch(fake: Fake302, tmp_path: Path) -> None:
    from soulcli import Soul

    soul = Soul(api_key=fake.settings.api_key, base_url=fake.base_url)
    task = soul.submit("a cat", out=tmp_path)
    # This process lives on (a notebook, a server): another soul may still finish it.
    finished = run_soul("fetch", fake=fake)
    assert finished.code == 0, finished.stderr
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        f"{task.task_id}_{i}.png" for i in range(1, 5)
    ]


def test_a_task_soul_did_not_submit_is_saved_into_the_default_directory(
    fake: Fake302, tmp_path: Path
) -> None:
    from soulcli import Soul

    elsewhere = Soul(api_key=fake.settings.api_key, base_url=fake.base_url, data_dir=tmp_path / "a")
    task = elsewhere.submit("a boat", out=tmp_path / "first")
    here = Soul(
        api_key=fake.settings.api_key,
        base_url=fake.base_url,
        data_dir=tmp_path / "b",
        out_dir=tmp_path / "second",
    )
    result = here.wait(task.task_id)
    assert result.status == "completed" and result.request is None
    assert {p.parent for p in result.images} == {tmp_path / "second"}


def test_a_timed_out_batch_line_keeps_its_task_id(tmp_path: Path) -> None:
    from soulcli import Soul

    settings = FakeSettings(api_key=SENTINEL_KEY, queue_seconds=0.1, never_finish=True)
    with Fake302(settings) as fake:
        soul = Soul(api_key=SENTINEL_KEY, base_url=fake.base_url)
        (result,) = soul.batch(["never done"], out=tmp_path, timeout=1)
    assert result.status == "timed_out" and result.task_id.startswith("higgsfield_")
    assert result.local_id == soul.history(limit=1)[0].id


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda soul: soul.price("720p", 1.5), "count must be a whole number"),
        (lambda soul: soul.price(None), "quality must be text"),
        (lambda soul: soul.styles(5), "search must be text"),
        (lambda soul: soul.request("x", seed="abc"), "seed must be a whole number"),
        (lambda soul: soul.request("x", seed=True), "seed must be a whole number"),
        (lambda soul: soul.generate(123), "the prompt must be text"),
        (lambda soul: soul.generate(soul.request("x"), style="Y2K"), "style given with"),
        (lambda soul: soul.history(state="zzz"), "unknown state"),
        (lambda soul: soul.generate("x", timeout=0), "timeout must be more than 0"),
    ],
)
def test_wrong_arguments_are_usage_errors(
    fake: Fake302, call: Callable[[Any], object], message: str
) -> None:
    from soulcli import Soul, UsageError

    soul = Soul(api_key=fake.settings.api_key, base_url=fake.base_url)
    with pytest.raises(UsageError, match=message):
        call(soul)
    assert fake.post_count() == 0
