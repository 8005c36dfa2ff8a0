"""Naming things (spaces, members, records, proposals), rhythms as text, and record files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from meshcrew.errors import AmbiguousName, InputError, TransferFileError, UnknownName
from meshcrew.service import format_rhythm, parse_rhythm, read_records, write_records
from meshcrew.service.records_file import MAGIC
from meshcrew.service.resolve import pick_record, pick_space
from meshcrew.spaces import Rhythm
from meshcrew.spaces.settings import Period
from test_service_support import Town, crew_of, send, sync

MOON = bytes.fromhex("ab120" + "0" * 59)
LOCKED = bytes.fromhex("ab121" + "0" * 59)
MARS = bytes.fromhex("cd000" + "0" * 59)


def test_spaces_by_id_prefix_or_name(town: Town) -> None:
    space, (ada, _bob) = crew_of(town, "Ada", "Bob")
    mars = ada.create_space("Mars")
    assert ada.resolve_space(space.hex()) == space
    assert ada.resolve_space(space.hex()[:6].upper()) == space
    assert ada.resolve_space("moon") == space
    assert ada.resolve_space(" Mars ") == mars
    with pytest.raises(UnknownName, match="No space matches 'Venus'; see the list"):
        ada.resolve_space("Venus")
    ada.create_space("moon")
    with pytest.raises(AmbiguousName, match="'Moon' matches 2 spaces"):
        ada.resolve_space("Moon")


def test_prefixes_need_four_digits_and_ambiguity_names_the_candidates() -> None:
    names = {MOON: "Moon", LOCKED: None, MARS: "Mars"}
    assert pick_space("cd00", names) == MARS
    with pytest.raises(UnknownName):
        pick_space("cd0", names)  # three digits are not a prefix
    with pytest.raises(AmbiguousName,
                       match=r"'ab12' matches 2 spaces \(Moon ab1200000000, \(locked\) "
                             r"ab1210000000\); give more of the id"):
        pick_space("ab12", names)
    assert pick_record("ab121", [MOON, LOCKED]) == LOCKED
    with pytest.raises(UnknownName, match="at least 4"):
        pick_record("ab", [MOON])
    with pytest.raises(UnknownName, match="is not a record id"):
        pick_record("zzzz", [MOON])
    with pytest.raises(UnknownName, match="No record matches"):
        pick_record("ffff", [MOON])


def test_members_by_name_fingerprint_or_key(town: Town) -> None:
    space, (ada, bob, _cy) = crew_of(town, "Ada", "Bob", "Cy")
    fpr = bob.identity.fingerprint
    for text in ("bob", "BOB", fpr, fpr.lower(), fpr.replace("-", "")[:6], bob.me.hex()[:8]):
        assert ada.resolve_member(space, text) == bob.me, text
    with pytest.raises(UnknownName, match="see the list with: meshcrew members SPACE"):
        ada.resolve_member(space, "Dee")


def test_records_posts_and_proposals_by_prefix(town: Town) -> None:
    space, (ada, bob, cy) = crew_of(town, "Ada", "Bob", "Cy")
    post = bob.checkin(space, text="hi", energy=3)
    send(bob, ada, space)
    assert ada.resolve_record(post.hex()[:10], posts_only=True) == post
    genesis_prefix = space.hex()[:10]
    assert ada.resolve_record(genesis_prefix) == space
    with pytest.raises(UnknownName, match="No post matches"):
        ada.resolve_record(genesis_prefix, posts_only=True)  # a genesis is not a post
    proposal = ada.propose_removal(space, cy.me)
    assert ada.resolve_proposal(space, proposal.hex()[:8]) == proposal
    assert ada.resolve_proposal(space, "cy") == proposal
    with pytest.raises(UnknownName, match="No removal proposal"):
        ada.resolve_proposal(space, "nobody")


def test_rhythm_text_round_trips_and_refuses_nonsense() -> None:
    cases = {
        "weekly:mon": Rhythm(Period.WEEKLY, 0, 90),
        "Weekly:Friday+13:00": Rhythm(Period.WEEKLY, 4, 780),
        "fortnightly:sun-05:30": Rhythm(Period.FORTNIGHTLY, 6, -330),
        "daily+2": Rhythm(Period.DAILY, 0, 120),
        "weekly": Rhythm(Period.WEEKLY, 0, 90),
    }
    for text, rhythm in cases.items():
        assert parse_rhythm(text, default_offset_min=90) == rhythm, text
        assert parse_rhythm(format_rhythm(rhythm)) == rhythm
    assert format_rhythm(Rhythm(Period.FORTNIGHTLY, 6, -330)) == "fortnightly:sun-05:30"
    for bad, fragment in (("monthly", "not daily, weekly or fortnightly"),
                          ("weekly:funday", "not a weekday"),
                          ("daily:mon", "no weekday"), ("weekly:mon+15:00", "at most"),
                          ("weekly:mon+1:75", "75 minutes"), ("every week", "not a rhythm")):
        with pytest.raises(InputError, match=fragment):
            parse_rhythm(bad)


def test_record_files_round_trip_and_refuse_damage(tmp_path: Path) -> None:
    path = tmp_path / "out.mcr"
    raws = [b"a" * 10, b"b" * 300]
    assert write_records(path, raws) == 2
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_records(path) == raws
    assert [p.name for p in tmp_path.iterdir()] == ["out.mcr"]  # no temporary file left
    data = path.read_bytes()
    assert data.startswith(MAGIC)
    path.write_bytes(data[:-1])
    with pytest.raises(TransferFileError, match="damaged or cut short after 1 records"):
        read_records(path)
    path.write_bytes(b"PK\x03\x04 a zip file")
    with pytest.raises(TransferFileError, match="not a file of meshcrew records"):
        read_records(path)
    path.write_bytes(MAGIC[:-1] + b"\x02")
    with pytest.raises(TransferFileError, match="newer meshcrew"):
        read_records(path)
    with pytest.raises(TransferFileError, match="Cannot read"):
        read_records(tmp_path / "absent.mcr")
    with pytest.raises(TransferFileError, match="Cannot write"):
        write_records(tmp_path / "no-such-folder" / "x.mcr", raws)


def test_export_and_import_files_between_homes(town: Town, tmp_path: Path) -> None:
    space, (ada, bob) = crew_of(town, "Ada", "Bob")
    ada.checkin(space, text="by file", energy=3)
    cy = town.person("Cy")
    report = ada.export_file([space], tmp_path / "moon.mcr")
    assert (report.records, report.spaces) == (len(ada.export(space)), (space,))
    imported = cy.import_file(tmp_path / "moon.mcr")
    assert (len(imported.accepted), imported.duplicates) == (report.records, 0)
    assert cy.summary(space).my_status == "outsider"
    again = cy.import_file(tmp_path / "moon.mcr")
    assert (len(again.accepted), again.duplicates, again.spaces) == (0, report.records, (space,))
    # A damaged file imports nothing.
    data = (tmp_path / "moon.mcr").read_bytes()
    (tmp_path / "cut.mcr").write_bytes(data[: len(data) // 2])
    before = bob.replica.record_count()
    with pytest.raises(TransferFileError):
        bob.import_file(tmp_path / "cut.mcr")
    assert bob.replica.record_count() == before
    sync(space, ada, bob)
    assert os.path.exists(tmp_path / "moon.mcr")
