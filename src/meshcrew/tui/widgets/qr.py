"""An invite code as a terminal QR code: two modules per character cell, with half blocks.

Codes are upper-cased first: QR's alphanumeric mode holds upper-case letters, digits and
``-`` at 5.5 bits a character instead of 8, and the invite decoder ignores case.
"""

from __future__ import annotations

import segno

QUIET_ZONE = 2
"""Light modules around the code (scanners need a margin)."""

_CELLS = {(False, False): " ", (True, False): "▀", (False, True): "▄", (True, True): "█"}


def qr_text(data: str) -> str:
    """``data`` as a QR code in text, dark modules drawn with block characters.

    Show it dark-on-light (black text on white): most scanners do not read inverted codes.
    """
    code = segno.make(data.upper(), error="l", micro=False)
    rows = [[bool(module) for module in row]
            for row in code.matrix_iter(scale=1, border=QUIET_ZONE)]
    if len(rows) % 2:
        rows.append([False] * len(rows[0]))
    return "\n".join("".join(_CELLS[(top, bottom)] for top, bottom in zip(upper, lower,
                                                                          strict=True))
                     for upper, lower in zip(rows[::2], rows[1::2], strict=True))
