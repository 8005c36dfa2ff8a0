"""Journey: the congregation board — directory, crews and whether each is open, looking for a
crew, gatherings, asks and offers with follow-ups."""

from __future__ import annotations

from textual.pilot import Pilot
from textual.widgets import DataTable, Input

from meshcrew.tui.screens.congregation import CongregationScreen
from meshcrew.tui.screens.forms import FieldsScreen
from meshcrew.tui.screens.membership import PickScreen
from meshcrew.tui.service_backend import LocalBackend
from test_tui_support import (
    DAY,
    Town,
    admit,
    drive,
    make_app,
    sync,
    table_rows,
    until,
    words,
)


def riverside(town: Town) -> tuple[bytes, bytes, list[LocalBackend]]:
    """A congregation of three, Ada's crew in it, an ask by Bo, Cy looking for a crew."""
    ada, bo, cy = (town.person(n) for n in ("Ada", "Bo", "Cy"))
    congregation = ada.create_space("Riverside", kind="congregation")
    for joiner in (bo, cy):
        town.clock.tick()
        admit(ada, joiner, congregation)
    sync(congregation, ada, bo, cy)
    crew = ada.create_space("Garden crew", parent=congregation)
    town.clock.tick()
    bo.post(congregation, bo.make_post("ask", title="A van for Saturday", text="moving day"))
    cy.post(congregation, cy.make_post("looking_for_crew", looking=True, note="mornings"))
    bo.post(congregation, bo.make_post("gathering", title="Spring gathering",
                                       when_ms=town.clock.now + 3 * DAY, where="the hall"))
    sync(congregation, ada, bo, cy)
    return congregation, crew, [ada, bo, cy]


async def fill(pilot: Pilot[None], **values: str) -> None:
    """Type into the open FieldsScreen's fields, then post."""
    await until(pilot, lambda: isinstance(pilot.app.screen, FieldsScreen), "the form")
    for name, value in values.items():
        pilot.app.screen.query_one(f"#field-{name}", Input).value = value
    await pilot.click("#send")


def test_congregation_board_shows_and_takes_every_kind_of_post(town: Town) -> None:
    congregation, crew, (ada, _bo, _cy) = riverside(town)
    app = make_app(ada)

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("enter")  # Riverside is first in the tree
        await until(pilot, lambda: isinstance(app.screen, CongregationScreen), "the board")
        assert table_rows(app, "items") == [["ask", "A van for Saturday", "Bo", "Mon 5 Jan", "0",
                                       "open"]]
        assert table_rows(app, "looking") == [["Cy", "mornings", "Mon 5 Jan"]]
        assert table_rows(app, "gatherings")[0][1:] == ["Spring gathering", "the hall", "Bo"]
        directory = {row[0]: row for row in table_rows(app, "directory")}
        assert set(directory) == {"Ada (you)", "Bo", "Cy"}
        assert directory["Cy"][4] == "yes"  # looking for a crew

        # Follow up on Bo's ask.
        await pilot.press("u")
        await fill(pilot, text="I can drive it at 9")
        await until(pilot, lambda: table_rows(app, "items")[0][4] == "1", "the follow-up")
        assert "I can drive it at 9" in words(app)

        # A gathering: a bad time is refused in the form, a good one posted.
        await pilot.press("g")
        await fill(pilot, title="Potluck", when="next friday", where="my garden")
        await until(pilot, lambda: "Write the time as YYYY-MM-DD HH:MM" in words(app),
                    "the refusal")
        when = app.screen.query_one("#field-when", Input)
        when.value = "2026-01-09 18:30"
        when.focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, CongregationScreen), "the board")
        gatherings = table_rows(app, "gatherings")
        assert [r[1] for r in gatherings] == ["Spring gathering", "Potluck"]  # soonest first
        assert gatherings[1][0] == "Fri 9 Jan 18:30"

        # Ada's crew is open to new crewmates.
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, PickScreen), "the crew choice")
        await pilot.press("enter")  # the first choice: Garden crew, open
        await until(pilot, lambda: bool(table_rows(app, "crews")), "the crew card")
        assert table_rows(app, "crews") == [["Garden crew", "open", "", "your crew"]]

        # An offer, and Ada looking for a crew.
        await pilot.press("o")
        await fill(pilot, title="Bike repairs", text="Sundays")
        await pilot.press("f")
        await fill(pilot, note="a second crew, evenings")
        await until(pilot, lambda: len(table_rows(app, "looking")) == 2, "Ada looking")

    drive(app, script)
    board = ada.board(congregation)
    assert [i.title for i in board.items] == ["A van for Saturday", "Bike repairs"]
    assert board.items[0].followups[0].fields["text"] == "I can drive it at 9"
    assert {p.fields["title"] for p in board.gatherings} == {"Spring gathering", "Potluck"}
    assert board.crew_cards[0].fields["crew"] == crew
    assert {p.author_name for p in board.looking_for_crew} == {"Ada", "Cy"}


def test_closing_my_own_ask_with_a_follow_up(town: Town) -> None:
    congregation, _crew, (ada, _bo, _cy) = riverside(town)
    ada.post(congregation, ada.make_post("ask", title="Someone to water plants"))
    app = make_app(ada)

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, CongregationScreen), "the board")
        table = app.screen.query_one("#items", DataTable)
        table.move_cursor(row=1)
        await pilot.press("u")
        await until(pilot, lambda: isinstance(app.screen, FieldsScreen), "the form")
        app.screen.query_one("#field-text", Input).value = "Sorted, thanks all"
        await pilot.click("#checkbox")
        await pilot.click("#send")
        await until(pilot, lambda: table_rows(app, "items")[1][5] == "closed", "closed")

    drive(app, script)
    assert [item.closed for item in ada.board(congregation).items] == [False, True]
