"""Adapter conformance harness, run for every venue adapter in :data:`app.venues.ADAPTERS`.

* :mod:`.invariants` states what a decoded item may contain, independently of the adapters.
* :mod:`.venues` is the one table of venues (:data:`~.venues.CASES`) and captures each venue's real
  frames and REST bodies from its emulator over real sockets.
* :mod:`.mutations` turns good frames into hostile ones (hypothesis strategies).
* ``test_fuzz_decode`` fuzzes ``decode()`` and the REST parsing; ``test_poison_frames`` slips poison
  frames between good ones on a live connection.

Adding a venue: one :class:`~.venues.VenueCase` in :data:`~.venues.CASES` (see its docstring).
"""
