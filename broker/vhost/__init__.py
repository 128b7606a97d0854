"""The virtual-host layer: one namespace of exchanges, queues and bindings
(``namespace``) and the one publish pipeline every message goes through to
reach queues (``publish``), with what the pipeline applies on the way:
sender-selected distribution (CC/BCC), the delayed-message exchange's
holding, message deduplication (docs/architecture.md, "One publish")."""
