"""Building posts from what a person typed: text normalised, limits turned into one sentence.

The domain's post classes check themselves and raise ``RecordError(bad_body)``, a reason meant
for records from peers. Here the same checks become :class:`~meshcrew.errors.InputError`
sentences for the person ("Cannot post this check-in: energy is not a whole number from 1 to
5."), and text is NFC-normalised and trimmed first, as typed text usually needs.
"""

from __future__ import annotations

from typing import Any, TypeVar

from meshcrew.errors import InputError
from meshcrew.records import RecordError
from meshcrew.spaces import (
    Amend,
    Answer,
    Ask,
    CheckIn,
    CrewCard,
    Followup,
    Gathering,
    LookingForCrew,
    Offer,
    Post,
    PostKind,
    Profile,
    Proposal,
    Reaction,
    Reply,
    Settings,
    SpaceKind,
    Withdraw,
)
from meshcrew.spaces.settings import clean_text

P = TypeVar("P", bound=Post)

POST_CLASSES: dict[PostKind, type[Any]] = {cls.kind: cls for cls in (
    Profile, CheckIn, Reply, Reaction, Ask, Offer, Followup, Gathering, LookingForCrew,
    CrewCard, Proposal, Answer, Amend, Withdraw, Settings)}


_LABELS = {"checkin": "check-in", "looking_for_crew": "looking-for-crew note"}


def kind_label(kind: PostKind | str) -> str:
    """How a kind of post is called in a sentence: ``check-in``, ``crew card``, ..."""
    value = kind.value if isinstance(kind, PostKind) else kind
    return _LABELS.get(value, value.replace("_", " "))


def not_posted_here(post: PostKind, space: SpaceKind, name: str,
                    congregation: str | None = None) -> str:
    """The sentence for a post that this kind of space does not take, saying where it goes.

    Args:
        post: the kind of post.
        space: the kind of space it was meant for.
        name: that space's name.
        congregation: the name of the congregation the space belongs to, if any.
    """
    label = kind_label(post)
    if space is SpaceKind.CONGREGATION:
        return (f"{name} is a congregation: a {label} belongs in a crew or dyad; post it in "
                "one of yours (meshcrew spaces lists them).")
    where = (f"post it in {congregation}, the congregation {name} belongs to" if congregation
             else "post it in a congregation of yours (meshcrew spaces lists them)")
    return f"{name} is a {space.value}: a {label} is for a whole congregation; {where}."


def make_post(cls: type[P], **fields: Any) -> P:
    """A post of class ``cls`` from typed values (strings normalised and trimmed).

    Raises:
        InputError: if a field is missing, of the wrong type or out of range.
    """
    cleaned: dict[str, Any] = {name: clean_text(value) if isinstance(value, str) else value
                               for name, value in fields.items()}
    label = kind_label(cls.kind)
    try:
        return cls(**cleaned)
    except RecordError as exc:
        raise InputError(f"Cannot post this {label}: {exc.detail}.") from None
    except TypeError as exc:
        raise InputError(f"Cannot post this {label}: {exc}.") from None


def make_post_of_kind(kind: PostKind | str, **fields: Any) -> Post:
    """Like :func:`make_post`, with the kind given by name (``ask``, ``gathering``, ...)."""
    try:
        cls = POST_CLASSES[PostKind(kind)]
    except ValueError:
        raise InputError(f"{kind!r} is not a kind of post; the kinds are "
                         f"{', '.join(k.value for k in PostKind)}.") from None
    post: Post = make_post(cls, **fields)
    return post
