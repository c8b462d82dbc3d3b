"""The README is a newcomer's page, and every command it shows works as shown."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from soulcli.fake302 import Fake302, FakeSettings
from tests.conftest import SENTINEL_KEY, SOUL, free_port, soul_env

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def code_blocks(text: str) -> list[str]:
    return re.findall(r"^```(?:sh|console)\n(.*?)^```", text, flags=re.M | re.S)


def test_the_readme_is_short_and_starts_where_a_newcomer_starts() -> None:
    assert len(README.splitlines()) < 200
    order = [
        "git clone",
        "pip install .",
        "python -m soulcli.fake302 &",
        "export SOUL_BASE_URL=",
        "soul config set api_key",
    ]
    positions = [README.index(step) for step in order]
    assert positions == sorted(positions), "the README's first steps are out of order"
    assert "/dev/null" not in README.split("## Everyday use")[0]
    assert re.search(r"About \d+ minutes", README)  # how long the tests take


def test_every_local_link_leads_somewhere() -> None:
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
            if not target.startswith("http"):
                assert (page.parent / target).exists(), f"{page.name} links to {target}"


def test_what_the_readme_creates_is_ignored_and_no_image_is_committed() -> None:
    ignored = [
        line for line in (ROOT / ".gitignore").read_text().splitlines() if line and line[0] != "#"
    ]
    assert len(ignored) == len(set(ignored)), "duplicate .gitignore entries"
    assert {"demo/", "pics/", "prompts.txt"} <= set(ignored)
    if shutil.which("git") and (ROOT / ".git").exists():
        tracked = subprocess.run(
            ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.split()
        images = [p for p in tracked if p.endswith((".png", ".jpg", ".webp"))]
        # Only the documentation's pictures, each shown on a page.
        assert all(p.startswith("docs/") for p in images), images
        pages = README + "".join(page.read_text() for page in (ROOT / "docs").glob("*.md"))
        assert all(Path(p).name in pages for p in images)


def test_the_licence_is_an_spdx_expression() -> None:
    meta = importlib.metadata.metadata("soulcli")
    assert meta["License-Expression"] == "MIT"
    assert (ROOT / "LICENSE").is_file()


def readme_commands(section: str) -> list[str]:
    """The commands of the first code block after a heading (`$ ` lines of a console)."""
    block = code_blocks(README.split(section, 1)[1])[0]
    lines = [line for line in block.splitlines() if line.strip()]
    if any(line.startswith("$ ") for line in lines):
        lines = [line[2:] for line in lines if line.startswith("$ ")]
    return [re.sub(r"\s+#.*$", "", line) for line in lines]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_the_offline_demo_and_everyday_commands_work_as_shown(tmp_path: Path) -> None:
    api, images = free_port(), free_port()
    demo = readme_commands("### Try it offline")
    everyday = readme_commands("## Everyday use")
    assert demo[0] == "python -m soulcli.fake302 &" and demo[-1].startswith("kill %1")
    # The fake's fixed ports may be taken on a test machine: the same demo on free ones.
    fake = [f"python -m soulcli.fake302 --port {api} --image-port {images} &", "sleep 1"]
    steps = fake + [
        line.replace("8302", str(api)).replace("8303", str(images)) for line in demo[1:-1]
    ]
    steps += [*everyday, "kill %1"]
    script = "\n".join(f"{step}\necho 'STEP {i} EXIT='$? >&2" for i, step in enumerate(steps))
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("SOUL_")
        or key in ("SOUL_CONFIG_DIR", "SOUL_DATA_DIR", "SOUL_CACHE_DIR")
    }
    env["PATH"] = f"{SOUL.parent}:{env['PATH']}"
    env["SOUL_POLL_SCALE"] = "0.2"
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    codes = {int(n): int(c) for n, c in re.findall(r"^STEP (\d+) EXIT=(\d+)$", done.stderr, re.M)}
    assert len(codes) == len(steps), done.stderr
    for number, step in enumerate(steps):
        allowed = {0, 7} if step == "soul fetch" else {0}  # 7: nothing left to resume
        assert codes[number] in allowed, f"`{step}` exited {codes[number]}:\n{done.stderr}"
    assert len(list((tmp_path / "demo").glob("*.png"))) == 12  # the generate and the batch
    assert sorted(p.name for p in (tmp_path / "pics").glob("cat*.png"))[:4] == [
        f"cat_{i}.png" for i in range(1, 5)
    ]
    assert "Traceback" not in done.stderr


def test_the_python_example_runs_as_shown(tmp_path: Path) -> None:
    code = re.findall(r"^```python\n(.*?)^```", README, flags=re.M | re.S)[0]
    settings = FakeSettings(api_key=SENTINEL_KEY, queue_seconds=0.2, run_seconds=0.3)
    with Fake302(settings) as fake:
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            env=soul_env(fake),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert fake.post_count() == 3
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    first, *batch = done.stdout.splitlines()
    assert first.startswith("completed 0.1 ['higgsfield_") and first.endswith("_4.png']")
    assert sorted(line.split()[:2] for line in batch) == [["1", "completed"], ["2", "completed"]]
    assert len(list((tmp_path / "pics").glob("*.png"))) == 12
