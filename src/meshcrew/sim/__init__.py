"""A seeded discrete-event simulator of a meshcrew congregation (issue 6).

It runs the node's own code where the node has it and models only what lies outside a node:

* **real**: members' ed25519 keys; records signed with ``records.sign_record``; the membership
  setup built with the space builders and read with ``spaces.fold``; posts sealed with
  ``spaces.seal_post``; one SQLite ``store.Replica`` per node, which verifies and keeps every
  record; catch-up sync by pairs of ``sync.SyncSession`` reading those replicas; the gossip
  validator's checks (signature, membership by the node's own view);
* **modelled**: the network (latency, uplink bandwidth, loss, partitions; NAT types, hole
  punching and relays with the node's rules and limits, as the NAT lab measured them), GossipSub
  (mesh, IHAVE/IWANT, seen-cache) with meshcrew's parameters, members' days (online windows,
  crashes, what they write and when);
* **carriers** (optional): nodes a crew names with a real ``carrier`` record, which take, keep
  and serve its sealed records as ``meshcrew.node.carrying`` does, without being members.

Pure Python: a heap of events and seeded ``random.Random`` streams; no trio, no clock. The
same scenario and seed give the same :class:`Summary`. Not imported by the node or the CLI;
``scripts/simulate`` runs the named scenarios, prints their summary and draws their curve.
"""

from meshcrew.sim.params import (
    Behaviour,
    CarrierKind,
    Carriers,
    GossipParams,
    Nat,
    NetParams,
    NodeParams,
    Online,
    Partition,
    RelayParams,
    Scenario,
)
from meshcrew.sim.report import Summary
from meshcrew.sim.run import Simulation, run_scenario
from meshcrew.sim.scenarios import SCALE_TABLE, SCENARIOS, congregation, reduced

__all__ = [
    "SCALE_TABLE",
    "SCENARIOS",
    "Behaviour",
    "CarrierKind",
    "Carriers",
    "GossipParams",
    "Nat",
    "NetParams",
    "NodeParams",
    "Online",
    "Partition",
    "RelayParams",
    "Scenario",
    "Simulation",
    "Summary",
    "congregation",
    "reduced",
    "run_scenario",
]
