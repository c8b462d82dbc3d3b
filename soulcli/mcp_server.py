"""`soul mcp`: the library's calls as tools for AI agents, over MCP on stdio, with a spend cap.

Every tool calls `Soul`, so an agent's tasks go through the ledger like the CLI's
(`soul history` shows them). Money is guarded by `SpendCap`: a call that could take
the server past `--max-spend` is refused before anything is sent. Errors come back as
MCP tool errors carrying the CLI's one-line messages. stdout carries the protocol only.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

# The SDK reads the tools' annotations at run time: what they name must be importable.
from mcp.types import ContentBlock
from pydantic import Field

from soulcli.errors import ExitCode, SoulError

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from soulcli.library import Result, Soul

# What an agent may spend in one server's lifetime unless --max-spend says otherwise:
# ten 720p requests (40 images).
DEFAULT_MAX_SPEND = Decimal("1")
# A submit that failed in one of these ways may have cost money: its price stays spent.
MAY_HAVE_BEEN_CHARGED = (
    ExitCode.MAYBE_CHARGED,
    ExitCode.UNRECORDED,
    ExitCode.INTERRUPTED,
    ExitCode.TERMINATED,
)
# Images handed back to the agent are thumbnails: a conversation stays small.
THUMBNAIL_PX = 384


class SpendCap:
    """What the server may still spend; a request's price is reserved before it is sent."""

    def __init__(self, limit: Decimal) -> None:
        self.limit = limit
        self.spent = Decimal(0)
        self._lock = threading.Lock()

    @property
    def remaining(self) -> Decimal:
        return max(Decimal(0), self.limit - self.spent)

    def reserve(self, price: Decimal) -> None:
        """Count `price` as spent, or raise if it would go past the cap (nothing is sent)."""
        from soulcli.models import format_ptc

        with self._lock:
            if self.spent + price > self.limit:
                raise SoulError(
                    f"this request costs {format_ptc(price)} PTC but only "
                    f"{format_ptc(self.remaining)} PTC of this server's --max-spend "
                    f"{format_ptc(self.limit)} PTC is left; nothing was sent",
                    hint="restart `soul mcp` with a higher --max-spend to allow more",
                    exit_code=ExitCode.DECLINED,
                )
            self.spent += price

    def refund(self, price: Decimal) -> None:
        """Give back a reservation for a request the server never took."""
        with self._lock:
            self.spent -= price

    def summary(self, charged: Decimal) -> dict[str, float]:
        """What a call spent, and where the cap stands after it."""
        with self._lock:
            spent = self.spent
        return {
            "charged_ptc": float(charged),
            "spent_ptc": float(spent),
            "remaining_ptc": float(max(Decimal(0), self.limit - spent)),
            "max_spend_ptc": float(self.limit),
        }


def tool_error(exc: SoulError) -> Exception:
    """The MCP tool error for a soul error: the CLI's one line (message, then hint)."""
    from mcp.server.mcpserver.exceptions import ToolError

    return ToolError(exc.message + (f" ({exc.hint})" if exc.hint else ""))


def thumbnail(path: Path) -> bytes | None:
    """A small JPEG of an image for the conversation, or None if it cannot be read."""
    try:
        from PIL import Image
    except ImportError:
        return None
    try:
        with Image.open(path) as image:
            image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="JPEG", quality=80)
    except (OSError, ValueError):
        return None
    return buffer.getvalue()


def result_content(result: Result, extra: dict[str, Any]) -> list[ContentBlock]:
    """A task's result: one JSON text (paths, request, price, budget), then its thumbnails."""
    from mcp.types import ImageContent, TextContent

    payload = {**result.to_json(), **extra}
    content: list[ContentBlock] = [
        TextContent(type="text", text=json.dumps(payload, ensure_ascii=False, indent=2))
    ]
    for path in result.images:
        small = thumbnail(path)
        if small is not None:
            data = base64.b64encode(small).decode("ascii")
            content.append(ImageContent(type="image", data=data, mime_type="image/jpeg"))
    return content


def within(soul: Soul, out: str | None) -> Path | None:
    """A tool's `out`: a relative path is under the server's directory (a client may
    start the server anywhere), an absolute one is taken as it is."""
    if out is None:
        return None
    path = Path(out).expanduser()
    return path if path.is_absolute() else Path(soul.settings.out_dir or ".") / path


def build_server(soul: Soul, cap: SpendCap) -> MCPServer:
    """The MCP server and its five tools, all calling `soul`."""
    from mcp.server.mcpserver import MCPServer

    from soulcli.models import format_ptc

    server = MCPServer(
        name="soul",
        # The SDK logs every tool call at INFO on stderr; a client shows stderr to users.
        log_level="WARNING",
        instructions=(
            "Generate images with Higgsfield's Soul model through 302.AI. Each generate "
            "costs money (0.1 PTC at 720p, 0.2 PTC at 1080p, for 4 images); this server "
            f"may spend at most {cap.limit} PTC. Check `price` and `list_styles` first."
        ),
    )

    @server.tool()
    def list_styles(
        search: Annotated[
            str | None, Field(description="Part of a style name, e.g. 'y2k'; omit for all 60.")
        ] = None,
    ) -> dict[str, Any]:
        """List Soul's styles: name and id, and the price per request of each quality."""
        styles = soul.styles(search)
        return {
            "styles": [{"name": s.name, "id": s.id} for s in styles],
            "price_ptc_per_request": {q: float(soul.price(q)) for q in ("720p", "1080p")},
            "images_per_request": 4,
        }

    @server.tool()
    def generate(
        prompt: Annotated[str, Field(description="What to draw.")],
        style: Annotated[
            str | None,
            Field(description="A style name or id from list_styles (default: General)."),
        ] = None,
        aspect_ratio: Annotated[
            str | None,
            Field(description="1:1, 3:4, 2:3, 9:16, 4:3, 16:9 or 3:2 (default 1:1)."),
        ] = None,
        quality: Annotated[
            str | None, Field(description="720p (0.1 PTC) or 1080p (0.2 PTC); default 720p.")
        ] = None,
        seed: Annotated[
            int | None, Field(description="Seed for a repeatable result; random if omitted.")
        ] = None,
        negative_prompt: Annotated[
            str | None, Field(description="What the images should not show.")
        ] = None,
        out: Annotated[
            str | None,
            Field(
                description="Directory for the 4 images; a relative one is under the "
                "server's image directory (default: that directory)."
            ),
        ] = None,
    ) -> list[ContentBlock]:
        """Generate 4 images from a prompt (this costs money), wait, and save them.

        Returns the saved paths, the request, what it cost and what remains of the
        spend cap, and the images as thumbnails.
        """
        try:
            request = soul.request(
                prompt,
                style=style,
                ar=aspect_ratio,
                quality=quality,
                seed=seed,
                negative=negative_prompt,
            )
            cap.reserve(request.price)
            try:
                task = soul.submit(request, out=within(soul, out))
            except SoulError as exc:
                if exc.exit_code not in MAY_HAVE_BEEN_CHARGED:
                    cap.refund(request.price)  # refused or never sent: nothing was charged
                else:
                    exc.hint = (exc.hint + "; " if exc.hint else "") + (
                        f"it counts against --max-spend: {format_ptc(cap.remaining)} PTC left"
                    )
                raise
            result = soul.wait(task)
        except SoulError as exc:
            raise tool_error(exc) from None
        return result_content(result, cap.summary(request.price))

    @server.tool()
    def fetch(
        task_id: Annotated[
            str, Field(description="A task id (higgsfield_...) or a local id from history.")
        ],
        wait: Annotated[
            bool, Field(description="Wait for the task to finish (default true).")
        ] = True,
    ) -> list[ContentBlock]:
        """Get a task's images: a task soul submitted is saved where it was submitted to.

        Costs nothing: it never submits.
        """
        try:
            result = soul.fetch(task_id, wait=wait)
        except SoulError as exc:
            raise tool_error(exc) from None
        return result_content(result, cap.summary(Decimal(0)))

    @server.tool()
    def history(
        limit: Annotated[int, Field(description="How many tasks, newest first.", ge=1)] = 10,
        search: Annotated[
            str | None, Field(description="Only tasks whose prompt contains this.")
        ] = None,
    ) -> dict[str, Any]:
        """Past tasks from soul's ledger: prompt, style, state, cost, where the images are."""
        try:
            records = soul.history(limit, search=search)
        except SoulError as exc:
            raise tool_error(exc) from None
        return {"tasks": [record.to_json() for record in records], **cap.summary(Decimal(0))}

    @server.tool()
    def price(
        quality: Annotated[str, Field(description="720p or 1080p.")] = "720p",
        count: Annotated[int, Field(description="How many requests (4 images each).", ge=0)] = 1,
    ) -> dict[str, Any]:
        """What `count` generate calls cost at a quality, and what this server may still spend."""
        try:
            total = soul.price(quality, count)
        except SoulError as exc:
            raise tool_error(exc) from None
        return {
            "quality": quality,
            "count": count,
            "images": 4 * count,
            "price_ptc": float(total),
            "remaining_ptc": float(cap.remaining),
            "max_spend_ptc": float(cap.limit),
            "within_cap": total <= cap.remaining,
        }

    return server


def serve(*, max_spend: Decimal, out_dir: Path) -> None:
    """Run the server on stdin and stdout until the client goes away."""
    from soulcli.library import Soul

    soul = Soul(out_dir=out_dir)
    build_server(soul, SpendCap(max_spend)).run("stdio")
