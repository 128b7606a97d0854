"""The persistence layer: the only part of ``broker`` that imports
``storage``. Start-up recovery (``recovery``, ``replay_keeper``), the
adapter the lower layers write through (``store``), the disk copy of
deduplication caches (``dedup_journal``) and the message database process
(docs/architecture.md, "Durability contract")."""
