"""The admin service layer: plain Python methods that change and list
users, virtual hosts, permissions and limits on a running broker
(AdminService, service.py), each write logged as an audit line naming the
actor (Actor, audit.py). The admin commands (over the control socket) and
the management HTTP API call it; they never change broker.access or the
vhosts themselves."""

from broker.admin.audit import Actor
from broker.admin.service import AdminError, AdminService, PermissionInfo

__all__ = ["Actor", "AdminError", "AdminService", "PermissionInfo"]
