"""The member service: the one API the CLI, the node's control socket and the TUI use.

:class:`Member` wraps a replica and an identity: reads return frozen entries (each with
``to_json()``), writes sign records as the member and append them. Its arguments and results
are plain values, so a node can offer the same methods over a local socket. See
``docs/cli.md`` for the commands built on it and ``docs/spaces.md`` for the rules underneath.
"""

from meshcrew.service.entries import (
    AnswerEntry,
    BoardItem,
    BoardView,
    CarrierEntry,
    CycleEntry,
    ExportReport,
    IngestReport,
    InviteEntry,
    MemberEntry,
    NamedKey,
    PostEntry,
    ProposalEntry,
    RejectedEntry,
    RemovalEntry,
    SettingsChangeEntry,
    SettingsEntry,
    SpaceSummary,
    ThreadEntry,
)
from meshcrew.service.member import Member
from meshcrew.service.reading import PREPARE_ABOVE, MemberReads, ViewCache
from meshcrew.service.records_file import read_records, write_records
from meshcrew.service.rhythm_text import format_rhythm, parse_rhythm
from meshcrew.service.views import SpaceView

__all__ = [
    "PREPARE_ABOVE", "AnswerEntry", "BoardItem", "BoardView", "CarrierEntry", "CycleEntry",
    "ExportReport", "IngestReport", "InviteEntry", "Member", "MemberEntry", "MemberReads",
    "NamedKey", "PostEntry", "ProposalEntry", "RejectedEntry", "RemovalEntry",
    "SettingsChangeEntry", "SettingsEntry", "SpaceSummary", "SpaceView", "ThreadEntry",
    "ViewCache", "format_rhythm", "parse_rhythm", "read_records", "write_records",
]
