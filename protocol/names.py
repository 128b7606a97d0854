"""Exchange and queue names as RabbitMQ takes them.

pamqp's method constructors check exchange and queue names against a
pattern of letters, digits and ``-_.:@#,/+`` and space
(``pamqp.constants.DOMAIN_REGEX``), raising ValueError otherwise. RabbitMQ
accepts any UTF-8 short string (rabbitmq.com/queues.html#names: "up to 255
bytes of UTF-8 characters"; checked on RabbitMQ 3.10: ``queue.declare``
of ``"q ü!"`` or a name with a tab gets declare-ok). A name a client could
declare must also be sayable in the broker's replies (declare-ok,
basic.deliver...), or the reply fails after the queue exists. Importing
this module widens pamqp's patterns to any string: the length limit stays
(pamqp refuses to encode a short string over 255 bytes), and method frames
a client sends are checked by protocol/wire_check.py, not by these
patterns (pamqp's decoder does not apply them).
"""

from __future__ import annotations

import re

import pamqp.constants

ANY_NAME = re.compile(r".*", re.DOTALL)

# pamqp's commands look the patterns up in this dict at call time: the one
# place where Leveret changes how pamqp validates.
pamqp.constants.DOMAIN_REGEX["exchange-name"] = ANY_NAME
pamqp.constants.DOMAIN_REGEX["queue-name"] = ANY_NAME
