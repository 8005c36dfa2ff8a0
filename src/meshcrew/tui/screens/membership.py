"""Changing membership: leave, propose a removal, consent to one, revoke an invite.

Each goes through a confirmation that says what will happen — who must agree, that the key
rotates, what the departed member keeps — before anything is signed.
"""

from __future__ import annotations

from collections.abc import Callable

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from meshcrew.service import MemberEntry, RemovalEntry
from meshcrew.tui.formatting import when
from meshcrew.tui.screens.base import MeshcrewModal, MeshcrewScreen
from meshcrew.tui.screens.forms import ConfirmScreen


class PickScreen(MeshcrewModal[str]):
    """Choose one of a few options; dismisses with the chosen option's id.

    Args:
        title: what to choose.
        options: (id, label) pairs.
    """

    def __init__(self, title: str, options: list[tuple[str, str]]) -> None:
        super().__init__()
        self.title_text = title
        self.options = options

    def compose(self) -> ComposeResult:
        """The title and the options."""
        with Vertical(classes="dialog"):
            yield Static(self.title_text, classes="title")
            yield OptionList(*(Option(label, id=key) for key, label in self.options),
                             id="pick")
            yield Static("enter chooses · escape cancels", classes="hint")

    def on_mount(self) -> None:
        """Choose with the keyboard at once."""
        self.query_one("#pick", OptionList).focus()

    @on(OptionList.OptionSelected, "#pick")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)


def leave_consequences(name: str) -> str:
    """What leaving does, for the confirmation."""
    return (f"You leave {name} now. Leaving is always allowed and needs no one's consent.\n\n"
            "• The others rotate the key: you cannot read anything written after you leave.\n"
            "• You keep what is already on this laptop: the history up to now stays "
            "readable here.\n"
            "• Your past check-ins stay with the others too.\n"
            "• To come back you need a new invite.")


def removal_consequences(target: str, space: str, electorate: int) -> str:
    """What proposing a removal does, for the confirmation."""
    needed = electorate // 2 + 1
    return (f"Your proposal counts as your consent. {target} is removed from {space} when a "
            f"majority of the other members consent: {needed} of {electorate} "
            f"({target} has no vote).\n\n"
            "• Until then nothing changes; each member decides for themselves.\n"
            f"• Once it takes effect, anything {target} writes after their last counted "
            "record does not count, and the key rotates: they cannot read anything new.\n"
            f"• {target} keeps what they already hold: the history up to the removal stays "
            "on their laptop.")


def consent_consequences(removal: RemovalEntry, space: str) -> str:
    """What consenting does, for the confirmation."""
    after = len(removal.consents) + 1
    effect = (f"Your consent makes it take effect ({after} of {removal.needed} needed)."
              if after >= removal.needed else
              f"After yours, {removal.needed - after} more consent(s) are needed.")
    return (f"You consent to removing {removal.member_name} from {space}. {effect}\n\n"
            f"• When it takes effect the key rotates: {removal.member_name} cannot read "
            "anything new; they keep the history they already hold.\n"
            "• A consent cannot be taken back.")


def _space_name(screen: MeshcrewScreen, space_id: bytes) -> str | None:
    summary = screen.attempt(lambda: screen.backend.summary(space_id))
    return None if summary is None else summary.name or "this space"


def _then(screen: MeshcrewScreen, action: Callable[[], bytes], done: str,
          after: Callable[[], None] | None = None) -> Callable[[bool | None], None]:
    def go(confirmed: bool | None) -> None:
        if confirmed and screen.attempt(action) is not None:
            screen.notify(done)
            if after is not None:
                after()

    return go


def leave(screen: MeshcrewScreen, space_id: bytes) -> None:
    """Ask, then leave the space and go back to the home screen."""
    name = _space_name(screen, space_id)
    if name is None:
        return
    app = screen.app

    def back_home() -> None:
        app.pop_screen()

    app.push_screen(ConfirmScreen(f"Leave {name}?", leave_consequences(name), "Leave"),
                    _then(screen, lambda: screen.backend.leave(space_id), f"You left {name}.",
                          after=back_home))


def propose_removal(screen: MeshcrewScreen, space_id: bytes, members: list[MemberEntry]) -> None:
    """Pick a member, ask, then propose their removal."""
    name = _space_name(screen, space_id)
    if name is None:
        return
    others = [m for m in members if m.status == "active" and not m.is_me]
    if not others:
        screen.notify("There is no one else in this space to remove.",
                      severity="warning")
        return

    def picked(key_hex: str | None) -> None:
        target = next((m for m in others if m.key.hex() == key_hex), None)
        if target is None:
            return
        electorate = len([m for m in members if m.status == "active"]) - 1
        screen.app.push_screen(
            ConfirmScreen(f"Propose removing {target.name}?",
                          removal_consequences(target.name, name, electorate),
                          "Propose removal"),
            _then(screen, lambda: screen.backend.propose_removal(space_id, target.key),
                  f"You proposed removing {target.name}; the others decide now."))

    screen.app.push_screen(PickScreen(
        "Whose removal do you propose?",
        [(m.key.hex(), f"{m.name}  ({m.fingerprint})") for m in others]), picked)


def consent(screen: MeshcrewScreen, space_id: bytes) -> None:
    """Pick an open removal proposal, ask, then consent to it."""
    name = _space_name(screen, space_id)
    removals = screen.attempt(lambda: screen.backend.removals(space_id))
    if name is None or removals is None:
        return
    me = screen.backend.identity.public_key
    open_ones = [r for r in removals if not r.effective and me not in r.consents
                 and r.member != me]
    if not open_ones:
        screen.notify("No removal proposal is waiting for your consent.")
        return

    def picked(id_hex: str | None) -> None:
        removal = next((r for r in open_ones if r.id.hex() == id_hex), None)
        if removal is None:
            return
        screen.app.push_screen(
            ConfirmScreen(f"Consent to removing {removal.member_name}?",
                          consent_consequences(removal, name), "Consent"),
            _then(screen, lambda: screen.backend.consent(space_id, removal.id),
                  f"You consented to removing {removal.member_name}."))

    screen.app.push_screen(PickScreen(
        "Which removal do you consent to?",
        [(r.id.hex(), f"remove {r.member_name}: {len(r.consents)} of {r.needed} consents")
         for r in open_ones]), picked)


def revoke_invite(screen: MeshcrewScreen, space_id: bytes) -> None:
    """Pick an invite that can still admit someone, ask, then revoke it."""
    name = _space_name(screen, space_id)
    invites = screen.attempt(lambda: screen.backend.invites(space_id))
    if name is None or invites is None:
        return
    open_ones = [i for i in invites if i.open]
    if not open_ones:
        screen.notify("No invite of this space can admit anyone now.")
        return
    tz = screen.tz

    def picked(id_hex: str | None) -> None:
        invite = next((i for i in open_ones if i.id.hex() == id_hex), None)
        if invite is None:
            return
        screen.app.push_screen(
            ConfirmScreen("Revoke this invite?", (
                f"No one can join {name} with it any more, even with the code in hand: every "
                "member's node refuses it once the revocation reaches it. Whoever already "
                "joined with it stays.\n\nTo invite someone after all, make a new invite."),
                "Revoke"),
            _then(screen, lambda: screen.backend.revoke_invite(space_id, invite.id),
                  "The invite is revoked."))

    screen.app.push_screen(PickScreen(
        "Which invite do you revoke?",
        [(i.id.hex(), f"{i.id.hex()[:8]} by {i.inviter_name}: {i.used} of {i.uses} used, "
          f"until {when(i.expires_ms, tz)}") for i in open_ones]), picked)
