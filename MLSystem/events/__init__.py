"""Events: a live, typed JSON stream of what jobs and training runs do, for any client.

* :mod:`~MLSystem.events.schema` — the event format and its types.
* :mod:`~MLSystem.events.derive` — events derived from the files MLSystem already writes: the
  queue folders (:mod:`~MLSystem.events.queue_scan`) and each running job's training files
  (:mod:`~MLSystem.events.training_files`); what it remembers is :mod:`~MLSystem.events.derive_state`.
* :mod:`~MLSystem.events.journal` — where sequence numbers are made and kept (one leader).
* :mod:`~MLSystem.events.source` — derive or follow in a thread; :mod:`~MLSystem.events.broker`
  fans out to many clients (and to the cockpit's live view, in-process);
  :mod:`~MLSystem.events.routes` serves ``/api/ws`` and ``/api/events``.
* ``python -m MLSystem.events`` — the same stream in a terminal.
* :mod:`~MLSystem.events.notify` — webhooks sent by the runner when jobs end.

Importing this package is cheap (no torch, no NiceGUI).
"""
