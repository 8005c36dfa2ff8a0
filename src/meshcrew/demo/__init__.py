"""``meshcrew demo``: a crew of three demo members on this machine, and you in it.

- :mod:`.cast`: the demo members and what they say.
- :mod:`.seed`: their homes, identities and a few weeks of crew history, written in-process
  with a fake clock (real, backdated, signed records).
- :mod:`.processes`: their ``meshcrew node`` processes on loopback, stopped by pid.
- :mod:`.live`: while the demo runs, they check in now and then through their nodes and say
  "heard you" to your check-ins.
- :mod:`.crew`: :class:`~meshcrew.demo.crew.DemoCrew` sets all that up, lets you join over
  the network with a real invite code, and tears it all down.
- :mod:`.headless`: the run without a screen, and its summary; :mod:`.app`: the run with the app.

Nothing here is imported by other commands; only :mod:`.app` loads Textual.
"""
