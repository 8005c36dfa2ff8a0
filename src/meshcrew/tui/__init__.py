"""The Textual app: the only package that imports Textual.

* :mod:`.backend` — the :class:`~meshcrew.tui.backend.Backend` protocol the screens use (the
  member service's reads and writes, plus what a node knows: status and holdings) and its events;
* :mod:`.service_backend` — :class:`~meshcrew.tui.service_backend.LocalBackend` (the service over
  the local replica, offline) and the reads it shares with the attached backend;
* :mod:`.node_backend` — the backend of a node running inside the app (trio guest mode);
* :mod:`.attached` — the backend of an app attached to a ``meshcrew node`` already running;
* :mod:`.health` — sync status as plain data (``OFFLINE`` without a node), receipts;
* :mod:`.node_runner` — runs a trio function as a guest on the app's asyncio loop;
* :mod:`.launch` — opens a home folder for the app (or sets one up on a first run);
* :mod:`.app` — :class:`~meshcrew.tui.app.MeshcrewApp` and ``run_app``; screens in
  :mod:`.screens`, widgets in :mod:`.widgets` (the virtualised timeline, the QR code), the
  timeline's cards in :mod:`.cards`, styles in ``app.tcss``.

``backend``, ``health``, ``node_runner``, ``node_backend``, ``attached`` and ``launch`` import no
Textual, so a node can build on them; importing this package imports none of the modules.
"""
