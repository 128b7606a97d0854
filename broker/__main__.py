"""``python -m broker`` is the ``leveret`` command (see ``broker.app.cli``)."""

from broker.app.cli import main

if __name__ == "__main__":
    main()
