"""The model layer: plain values every other layer shares. Messages and
their place in a queue (``message``), reading and rewriting content-header
bytes (``message_headers``), the small interfaces lower layers see upper
ones through (``interfaces``), the wall clock (``clock``) and removal
reasons (``reasons``). Imports only ``protocol`` (docs/architecture.md)."""
