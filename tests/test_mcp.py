"""`soul mcp`, driven over stdio by the official MCP SDK's own client, against the fake."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from PIL import Image

from soulcli.fake302 import Fake302, FakeSettings
from soulcli.mcp_server import DEFAULT_MAX_SPEND
from tests.conftest import SENTINEL_KEY, SOUL, run_soul, soul_env, wait_until
from tests.test_readme import README

Session = Callable[[ClientSession], Awaitable[Any]]


def with_server(fake: Fake302 | None, out: Path, *args: str, steps: Session) -> Any:
    """Start `soul mcp --out OUT ARGS` as an MCP client would, run `steps` in a session.

    The server's stderr goes to `server-stderr.txt` beside OUT.
    """
    return run_session(fake, ["mcp", "--out", str(out), *args], out.parent, steps)


def run_session(fake: Fake302 | None, args: list[str], logs: Path, steps: Session) -> Any:
    async def main() -> Any:
        params = StdioServerParameters(command=str(SOUL), args=args, env=soul_env(fake))
        with (logs / "server-stderr.txt").open("w") as errlog:
            async with (
                stdio_client(params, errlog=errlog) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                return await steps(session)

    return asyncio.run(asyncio.wait_for(main(), timeout=90))


def text_of(result: Any) -> str:
    return str(result.content[0].text)


def test_the_tools_are_listed_with_typed_described_parameters(
    fake: Fake302, tmp_path: Path
) -> None:
    async def steps(session: ClientSession) -> Any:
        return (await session.list_tools()).tools

    tools = {t.name: t for t in with_server(fake, tmp_path / "out", steps=steps)}
    assert set(tools) == {"list_styles", "generate", "fetch", "history", "price"}
    generate = tools["generate"].input_schema
    assert generate["required"] == ["prompt"]
    assert set(generate["properties"]) == {
        "prompt",
        "style",
        "aspect_ratio",
        "quality",
        "seed",
        "negative_prompt",
        "out",
    }
    for name, schema in generate["properties"].items():
        assert schema.get("description"), f"generate's {name} has no description"
    assert "integer" in json.dumps(generate["properties"]["seed"])
    assert all(t.description for t in tools.values())


def test_search_styles_then_generate_saves_four_files_and_returns_thumbnails(
    fake: Fake302, tmp_path: Path
) -> None:
    out = tmp_path / "out"

    async def steps(session: ClientSession) -> Any:
        styles = await session.call_tool("list_styles", {"search": "y2k"})
        made = await session.call_tool(
            "generate", {"prompt": "a red fox", "style": "Tokyo", "aspect_ratio": "16:9"}
        )
        return styles, made

    styles, made = with_server(fake, out, "--max-spend", "1", steps=steps)
    listed = json.loads(text_of(styles))
    assert {s["name"] for s in listed["styles"]} == {"Y2K", "Y2K posters"}
    assert listed["price_ptc_per_request"] == {"720p": 0.1, "1080p": 0.2}
    assert not made.is_error
    summary = json.loads(text_of(made))
    assert summary["status"] == "completed" and summary["style"]["name"] == "Tokyo streetstyle"
    assert summary["aspect_ratio"] == "16:9" and summary["cost_ptc"] == 0.1
    assert summary["charged_ptc"] == 0.1 and summary["spent_ptc"] == 0.1
    assert summary["remaining_ptc"] == 0.9
    paths = [Path(p) for p in summary["images"]]
    assert len(paths) == 4 and all(p.parent == out and p.is_file() for p in paths)
    images = [c for c in made.content if c.type == "image"]
    assert len(images) == 4
    for block in images:
        assert block.mime_type == "image/jpeg"
        thumb = Image.open(io.BytesIO(base64.b64decode(block.data)))
        assert max(thumb.size) <= 384  # a thumbnail, not the 1152 px original
    assert fake.post_count() == 1
    # The agent's task is in the ledger like any other.
    history = json.loads(run_soul("history", "--json", fake=fake).stdout)
    assert [row["task_id"] for row in history] == [summary["task_id"]]


def test_the_spend_cap_refuses_the_call_that_would_pass_it_and_sends_nothing(
    fake: Fake302, tmp_path: Path
) -> None:
    async def steps(session: ClientSession) -> Any:
        first = await session.call_tool("generate", {"prompt": "one"})
        second = await session.call_tool("generate", {"prompt": "two"})
        price = await session.call_tool("price", {"quality": "1080p", "count": 2})
        return first, second, price

    first, second, price = with_server(fake, tmp_path / "out", "--max-spend", "0.15", steps=steps)
    assert not first.is_error
    assert second.is_error
    message = text_of(second)
    assert "--max-spend 0.15 PTC" in message and "nothing was sent" in message
    assert "\n" not in message
    assert fake.post_count() == 1
    quoted = json.loads(text_of(price))
    assert quoted["price_ptc"] == 0.4 and quoted["remaining_ptc"] == 0.05
    assert quoted["within_cap"] is False


def test_errors_are_tool_errors_with_the_cli_message_and_no_key(
    fake: Fake302, tmp_path: Path
) -> None:
    async def steps(session: ClientSession) -> Any:
        bad_style = await session.call_tool("generate", {"prompt": "x", "style": "Nonesuch"})
        unknown = await session.call_tool("fetch", {"task_id": "higgsfield_000000000000"})
        history = await session.call_tool("history", {"limit": 5})
        return bad_style, unknown, history

    bad_style, unknown, history = with_server(fake, tmp_path / "out", steps=steps)
    assert bad_style.is_error and "unknown style 'Nonesuch'" in text_of(bad_style)
    assert unknown.is_error and "higgsfield_000000000000" in text_of(unknown)
    assert not history.is_error
    assert json.loads(text_of(history))["tasks"] == []
    for result in (bad_style, unknown, history):
        assert SENTINEL_KEY not in text_of(result)
    assert fake.post_count() == 0
    assert SENTINEL_KEY not in (tmp_path / "server-stderr.txt").read_text()


def test_fetch_tool_saves_a_task_the_server_submitted(fake: Fake302, tmp_path: Path) -> None:
    out = tmp_path / "out"

    async def steps(session: ClientSession) -> Any:
        made = json.loads(text_of(await session.call_tool("generate", {"prompt": "a boat"})))
        for path in made["images"]:
            Path(path).unlink()
        return made, await session.call_tool("fetch", {"task_id": made["task_id"]})

    made, fetched = with_server(fake, out, steps=steps)
    again = json.loads(text_of(fetched))
    assert again["task_id"] == made["task_id"] and again["cost_ptc"] == 0.1
    assert again["charged_ptc"] == 0 and again["spent_ptc"] == 0.1  # a fetch costs nothing
    assert sorted(again["images"]) == sorted(made["images"])
    assert all(Path(p).is_file() for p in again["images"])
    assert fake.post_count() == 1


def test_without_the_mcp_package_it_says_how_to_install_it(fake: Fake302, tmp_path: Path) -> None:
    shim = tmp_path / "shim" / "mcp"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'mcp'\", name='mcp')\n"
    )
    env = soul_env(fake, PYTHONPATH=str(shim.parent))
    result = run_soul("mcp", env=env)
    assert result.code == 3
    assert result.stdout == ""
    assert "pip install 'soulcli[mcp]'" in result.stderr
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("value", ["-1", "lots"])
def test_a_bad_max_spend_is_a_usage_error(fake: Fake302, value: str) -> None:
    result = run_soul("mcp", "--max-spend", value, fake=fake)
    assert result.code == 2 and "--max-spend" in result.stderr
    assert result.stdout == ""


def test_the_readme_snippet_starts_a_server_with_the_stated_default_cap(
    fake: Fake302, tmp_path: Path
) -> None:
    snippet = json.loads(re.findall(r"^```json\n(.*?)^```", README, flags=re.M | re.S)[0])
    entry = snippet["mcpServers"]["soul"]
    assert Path(entry["command"]).name == "soul"
    args = list(entry["args"])
    assert args[0] == "mcp"
    args[args.index("--out") + 1] = str(tmp_path / "out")

    async def steps(session: ClientSession) -> Any:
        tools = (await session.list_tools()).tools
        return {t.name for t in tools}, await session.call_tool("price", {})

    names, price = run_session(fake, args, tmp_path, steps)
    assert names == {"list_styles", "generate", "fetch", "history", "price"}
    assert json.loads(text_of(price))["max_spend_ptc"] == 1.0
    # The README's default is the server's default.
    assert f"default **{DEFAULT_MAX_SPEND} PTC**" in README

    async def cap(session: ClientSession) -> Any:
        return json.loads(text_of(await session.call_tool("price", {})))["max_spend_ptc"]

    assert run_session(fake, ["mcp", "--out", str(tmp_path / "o2")], tmp_path, cap) == 1.0


def test_a_refused_request_gives_its_price_back_and_a_dropped_one_does_not(
    fake: Fake302, tmp_path: Path
) -> None:
    fake.state.inject("submit", "402", "drop")

    async def steps(session: ClientSession) -> Any:
        refused = await session.call_tool("generate", {"prompt": "one"})
        after_refusal = json.loads(text_of(await session.call_tool("price", {})))
        dropped = await session.call_tool("generate", {"prompt": "two"})
        after_drop = json.loads(text_of(await session.call_tool("price", {})))
        return refused, after_refusal, dropped, after_drop

    refused, after_refusal, dropped, after_drop = with_server(
        fake, tmp_path / "out", "--max-spend", "0.3", steps=steps
    )
    # 402: the server took nothing, so the cap is whole again.
    assert refused.is_error and after_refusal["remaining_ptc"] == 0.3
    # The connection dropped after the POST went out: it may have been charged.
    assert dropped.is_error and "may have been charged" in text_of(dropped)
    assert after_drop["remaining_ptc"] == 0.2


def server_pid(out: Path) -> int:
    """The pid of the `soul mcp` serving `out` (an MCP client does not say)."""
    found = subprocess.run(
        ["pgrep", "-f", f"mcp --out {out}"], capture_output=True, text=True
    ).stdout.split()
    assert len(found) == 1, found
    return int(found[0])


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_ends_the_server_at_once(fake: Fake302, tmp_path: Path, stop: int) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [str(SOUL), "mcp", "--out", str(out)],
        stdin=subprocess.PIPE,  # held open: a client that is still there
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=soul_env(fake),
    )
    wait_until(lambda: out.is_dir(), "the server started")
    time.sleep(0.5)
    proc.send_signal(stop)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == (143 if stop == signal.SIGTERM else 130)
    assert err.decode().startswith("soul: error: ")
    assert "Traceback" not in err.decode()


def test_a_server_stopped_mid_generate_leaves_the_task_for_soul_fetch(tmp_path: Path) -> None:
    settings = FakeSettings(api_key=SENTINEL_KEY, queue_seconds=1.5, run_seconds=1.5)
    out = tmp_path / "out"
    with Fake302(settings) as fake:

        async def steps(session: ClientSession) -> Any:
            call = asyncio.create_task(session.call_tool("generate", {"prompt": "slow one"}))
            while fake.poll_count() < 1:
                await asyncio.sleep(0.05)
            os.kill(server_pid(out), signal.SIGTERM)
            with pytest.raises(Exception):  # noqa: B017 - the connection closes under it
                await call

        with_server(fake, out, steps=steps)
        rows = json.loads(run_soul("history", "--json", fake=fake).stdout)
        assert [row["state"] for row in rows] == ["submitted"]
        finished = run_soul("fetch", fake=fake)
        assert finished.code == 0, finished.stderr
        assert len(list(out.glob("*.png"))) == 4
        assert fake.post_count() == 1


def test_a_relative_out_is_under_the_servers_directory(fake: Fake302, tmp_path: Path) -> None:
    out = tmp_path / "out"

    async def steps(session: ClientSession) -> Any:
        return await session.call_tool("generate", {"prompt": "a cat", "out": "cats"})

    made = json.loads(text_of(with_server(fake, out, steps=steps)))
    assert {Path(p).parent for p in made["images"]} == {out / "cats"}
