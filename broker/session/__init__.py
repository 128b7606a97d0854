"""The session layer: what happens on one channel. Channel state and method
dispatch (``channel``), the method handlers per AMQP class
(``*_methods``), consumers, deliveries and acknowledgements, publisher
confirms, transactions, the acknowledgement timeout and the publish route
cache. Turns the publish pipeline's outcome into basic.return and confirms
(docs/architecture.md, "One publish", "One delivery")."""
