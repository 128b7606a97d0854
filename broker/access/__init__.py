"""Access control (rabbitmq.com/access-control.html): users and their
password hashes (passwords), permissions per user and vhost (permissions),
limits (limits), and the state that holds them, decides logins and counts
connections and channels (control). Pure rules: no I/O; the durable copy
is written through an interface (control.AccessStore) that
broker.persistence implements."""

from broker.access.control import AccessControl, AccessStore, User, VirtualHost
from broker.access.permissions import Grant

__all__ = ["AccessControl", "AccessStore", "Grant", "User", "VirtualHost"]
