"""The model layer: plain values every other layer shares. Messages and
their place in a queue (``message``), reading and rewriting content-header
bytes (``message_headers``), reading argument values (``field_values``),
the small interfaces lower layers see upper ones through (``interfaces``,
``message_store``), events (``events``), the wall clock (``clock``) and
removal reasons (``reasons``). Imports only ``protocol``
(docs/architecture.md, "Layers")."""
