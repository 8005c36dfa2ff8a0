"""docs/sync.md states the sync protocol's numbers; check them against the code."""

from __future__ import annotations

from pathlib import Path

from meshcrew.net import INVALID_GOSSIP, INVALID_RECORD, PROTOCOL_VIOLATION, STALLED, NetConfig
from meshcrew.net.config import GossipConfig
from meshcrew.sync import PROTOCOL_ID, PROTOCOL_IDS, SYNC_VERSION, SyncSession
from meshcrew.sync.reconcile import FANOUT, FINGERPRINT_BYTES, LEAF_ENTRIES, MAX_DEPTH
from meshcrew.sync.wire import (
    ENTRY_BYTES,
    MAX_BATCH_BYTES,
    MAX_BATCH_RECORDS,
    MAX_FRAME_BYTES,
    MAX_FRONTIER_ENTRIES,
    MAX_OFFERS,
    MAX_RECORDS_PER_SPACE,
    OFFER_BYTES,
)
from replica_in_memory import MemoryReplica, make_chain, signing_key, space_id

DOC = (Path(__file__).parent.parent / "docs" / "sync.md").read_text(encoding="utf-8")


def test_the_documented_limits_are_the_codes() -> None:
    assert f"**`{PROTOCOL_ID}`**" in DOC
    assert SYNC_VERSION == 2
    assert f"`{PROTOCOL_IDS[1]}` (version 1" in DOC
    assert (FANOUT, FINGERPRINT_BYTES, LEAF_ENTRIES, MAX_DEPTH) == (16, 4, 2, 64)
    assert "the first 4 bytes of\n  `BLAKE2b(entries, person = \"meshcrew.sync.rf\")`" in DOC
    assert "at most 2 entries there" in DOC
    assert "down to depth 64" in DOC
    assert MAX_FRAME_BYTES == 1 << 20
    assert "MAX_FRAME_BYTES` (1 MiB)" in DOC
    assert f"`MAX_BATCH_RECORDS` ({MAX_BATCH_RECORDS})" in DOC
    assert MAX_BATCH_BYTES == 512 * 1024
    assert "`MAX_BATCH_BYTES` (512 KiB)" in DOC
    assert f"`MAX_RECORDS_PER_SPACE` ({MAX_RECORDS_PER_SPACE:,})".replace(",", " ") in DOC
    assert f"`MAX_OFFERS` ({MAX_OFFERS})" in DOC
    assert f"`MAX_FRONTIER_ENTRIES` ({MAX_FRONTIER_ENTRIES})" in DOC
    assert f"{ENTRY_BYTES}-byte entries" in DOC
    assert f"{OFFER_BYTES}-byte offers" in DOC


def test_the_documented_in_sync_cost_is_what_a_session_sends() -> None:
    records = make_chain(signing_key(1), space_id(1), 3)
    key_a, key_b = bytes(signing_key(2).verify_key), bytes(signing_key(3).verify_key)
    a = SyncSession(key_a, key_b, [space_id(1)], MemoryReplica(records))
    b = SyncSession(key_b, key_a, [space_id(1)], MemoryReplica(records))
    hello_a, hello_b = a.data_to_send(), b.data_to_send()
    a.receive_data(hello_b)
    b.receive_data(hello_a)
    assert a.complete
    assert b.complete
    assert len(hello_a) == len(hello_b) == 38
    assert "For one space: 38 bytes each way, 76 in" in DOC


def test_the_documented_network_settings_are_the_defaults() -> None:
    gossip, net = GossipConfig(), NetConfig()
    assert (gossip.degree, gossip.degree_low, gossip.degree_high) == (8, 4, 64)
    assert "D = 8, D_low = 4,\nD_high = 64, heartbeat 1 s" in DOC
    assert gossip.heartbeat_s == 1
    assert f"spam protection at {gossip.max_messages_per_topic_per_second:.0f} messages" in DOC
    assert gossip.publish_interval_s == 0.005
    assert "one message per 5 ms" in DOC
    assert f"queues up to {gossip.publish_queue}" in DOC
    assert (net.read_timeout_s, net.session_timeout_s) == (15, 300)
    assert (net.ban_threshold, net.penalty_decay_per_s) == (100, 1 / 60)
    for points, offence in [(INVALID_GOSSIP, "invalid gossip message"),
                            (INVALID_RECORD, "record from sync refused by the replica"),
                            (PROTOCOL_VIOLATION, "sync protocol violation"),
                            (STALLED, "stalled sync stream")]:
        assert f"| {offence} | {points:.0f} |" in DOC
