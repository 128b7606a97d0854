"""``python -m broker`` is the ``leveret`` command (see ``broker.cli``)."""

from broker.cli import main

if __name__ == "__main__":
    main()
