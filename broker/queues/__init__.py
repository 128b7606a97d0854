"""The queue layer: one queue's ready messages, its consumers seen through
``broker.model.interfaces.QueueConsumer``, and its message lifecycle: TTL,
length limits, dead-letter copies (x-death), delivery limit, x-expires,
priorities and consumer selection. Below the vhost: a queue never routes a
message itself, it hands dead-letter copies to the vhost's publish pipeline
(docs/architecture.md, "Layers")."""
