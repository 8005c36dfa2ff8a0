"""Write SVG screenshots of the app's main screens to docs/screenshots/ (for the README).

Run with ``.venv/bin/python scripts/tui_screenshots.py``. It builds the same small world as the
snapshot tests (tests/test_tui_snapshots.py: a congregation, two crews, check-ins with answers,
an ask and a gathering, fixed keys and clock), opens each screen with Textual's pilot at
120x36 and saves it with ``App.save_screenshot``.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from textual.containers import VerticalScroll

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from test_tui_snapshots import SCREENS, devices, lived_in, with_laptops  # noqa: E402
from test_tui_support import Town  # noqa: E402

SIZE = (120, 36)
OUT = ROOT / "docs" / "screenshots"
SHOWN = {"home": "Home: spaces, unread counts, check-ins due, connection",
         "space": "A crew: members with energy sparklines, the cycle, the timeline",
         "checkin": "Checking in: arrival, energy, compass, an ask",
         "invite": "An invite: the code as text and as a QR code",
         "congregation": "A congregation's board: asks and offers, crews, gatherings",
         "leave": "Leaving: what happens, before anything is signed",
         "sync_health": "Sync health: peers, what each member lacks, rejected records",
         "devices": "A member's devices: when each was linked and last seen, link, revoke"}


async def shoot(name: str, root: Path) -> None:
    """Open one screen in a fresh world and save it."""
    town = Town(root / name)
    app = with_laptops(town) if name == "devices" else lived_in(town)
    try:
        async with app.run_test(size=SIZE) as pilot:
            app.animation_level = "none"
            await pilot.pause()
            await (devices if name == "devices" else SCREENS[name])(pilot)
            if name == "invite":  # show the QR code, below the code and the buttons
                app.screen.query_one(VerticalScroll).scroll_end(animate=False)
            await pilot.pause()
            app.save_screenshot(filename=f"{name}.svg", path=str(OUT))
    finally:
        town.close()


def main() -> int:
    """Write every screenshot (or those named as arguments)."""
    OUT.mkdir(parents=True, exist_ok=True)
    wanted = sys.argv[1:] or list(SHOWN)
    with tempfile.TemporaryDirectory(prefix="tui-shots-") as tmp:
        for name, caption in SHOWN.items():
            if name not in wanted:
                continue
            asyncio.run(shoot(name, Path(tmp)))
            print(f"docs/screenshots/{name}.svg  {caption}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
