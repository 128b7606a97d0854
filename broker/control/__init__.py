"""The local control channel: a Unix socket in the data directory through
which the ``leveret`` command line talks to the running broker.

- ``wire``: the format, one JSON object per line each way, and
  ``ControlError`` (message and code).
- ``registry``: command name -> handler; ``argument`` checks a request's
  arguments.
- ``standard``: the broker's set (``standard_registry``); a package adding
  commands lists its ``register(registry)`` there.
- ``address``: the socket's path, reachable even when longer than a Unix
  socket address allows.
- ``socket_server``: the broker side (``ControlServer``), started and
  stopped by ``broker.app.server``.
- ``client``: the command-line side (``call``).
- ``queue_commands``: ``queues.list``.

It sits in the layers between ``broker.app`` (which builds it and is its
context) and ``broker.transport``; handlers read the broker through the
context they are given, never through imports of ``broker.app``.
"""
