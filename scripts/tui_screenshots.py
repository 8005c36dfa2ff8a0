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

from test_tui_snapshots import SCREENS, lived_in  # noqa: E402
from test_tui_support import Town  # noqa: E402

SIZE = (120, 36)
OUT = ROOT / "docs" / "screenshots"
SHOWN = {"home": "Home: spaces, unread counts, check-ins due, connection",
         "space": "A crew: members with energy sparklines, the cycle, the timeline",
         "checkin": "Checking in: arrival, energy, compass, an ask",
         "invite": "An invite: the code as text and as a QR code",
         "congregation": "A congregation's board: asks and offers, crews, gatherings",
         "leave": "Leaving: what happens, before anything is signed",
         "sync_health": "Sync health: peers, what each member lacks, rejected records"}


async def shoot(name: str, root: Path) -> None:
    """Open one screen in a fresh world and save it."""
    town = Town(root / name)
    app = lived_in(town)
    try:
        async with app.run_test(size=SIZE) as pilot:
            app.animation_level = "none"
            await pilot.pause()
            await SCREENS[name](pilot)
            if name == "invite":  # show the QR code, below the code and the buttons
                app.screen.query_one(VerticalScroll).scroll_end(animate=False)
            await pilot.pause()
            app.save_screenshot(filename=f"{name}.svg", path=str(OUT))
    finally:
        town.close()


def main() -> int:
    """Write every screenshot."""
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tui-shots-") as tmp:
        for name, caption in SHOWN.items():
            asyncio.run(shoot(name, Path(tmp)))
            print(f"docs/screenshots/{name}.svg  {caption}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
