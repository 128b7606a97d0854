"""The application layer: the command line (``cli``, ``cli_tools``), the
settings (``config``) and the broker process (``server``) that builds every
other layer and wires them together. Top of the layer rule
(docs/architecture.md, "Layers"): imports anything below, nothing imports it."""
