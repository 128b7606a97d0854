"""Vhosts, users, permissions, limits and definitions:
``/api/vhosts[/vh]``, ``/api/users[/name]``, ``/api/permissions[/vh/user]``,
``/api/vhost-limits``, ``/api/user-limits``, ``/api/parameters``,
``/api/policies`` and ``/api/definitions[/vh]``, as RabbitMQ 3.10's
rabbit_mgmt_wm_vhost(s), _user(s), _permission(s), _limits and
_definitions. Every write goes through the admin service
(broker/admin/service.py, broker/admin/definitions.py): durable when
answered, one audit line naming the user and the client address. Users,
permissions and definitions are for administrators; vhosts are listed to
every management user who has permissions in them."""

from __future__ import annotations

import json

from broker.access.passwords import SHA256

from broker.admin.definitions import export_definitions, forget_user, forget_vhost, import_definitions
from broker.admin.definitions_records import DefinitionsError
from broker.control.queue_commands import unacked_by_queue
from broker.management import figures, http
from broker.management.auth import check_vhost_read
from broker.management.listing import listed
from broker.management.routing import ADMINISTRATOR, Call, Routes


def register(routes: Routes) -> None:
    routes.get("/vhosts", list_vhosts)
    routes.get("/vhosts/{vhost}", show_vhost)
    routes.add("PUT", "/vhosts/{vhost}", put_vhost, ADMINISTRATOR)
    routes.add("DELETE", "/vhosts/{vhost}", delete_vhost, ADMINISTRATOR)
    routes.get("/vhosts/{vhost}/permissions", vhost_permissions, ADMINISTRATOR)
    routes.get("/users", list_users, ADMINISTRATOR)
    routes.get("/users/without-permissions", users_without_permissions, ADMINISTRATOR)
    routes.add("POST", "/users/bulk-delete", bulk_delete_users, ADMINISTRATOR)
    routes.get("/users/{name}", show_user, ADMINISTRATOR)
    routes.add("PUT", "/users/{name}", put_user, ADMINISTRATOR)
    routes.add("DELETE", "/users/{name}", delete_user, ADMINISTRATOR)
    routes.get("/users/{name}/permissions", user_permissions, ADMINISTRATOR)
    routes.get("/permissions", list_permissions, ADMINISTRATOR)
    routes.get("/permissions/{vhost}/{user}", show_permission, ADMINISTRATOR)
    routes.add("PUT", "/permissions/{vhost}/{user}", put_permission, ADMINISTRATOR)
    routes.add("DELETE", "/permissions/{vhost}/{user}", delete_permission, ADMINISTRATOR)
    routes.get("/vhost-limits", vhost_limits)
    routes.get("/user-limits", user_limits, ADMINISTRATOR)
    routes.get("/parameters", parameters)
    routes.get("/policies", policies)
    routes.get("/definitions", get_definitions, ADMINISTRATOR)
    routes.add("POST", "/definitions", post_definitions, ADMINISTRATOR)
    routes.get("/definitions/{vhost}", get_vhost_definitions, ADMINISTRATOR)
    routes.add("POST", "/definitions/{vhost}", post_vhost_definitions, ADMINISTRATOR)


# ---- vhosts -------------------------------------------------------------------

def vhost_row(server, record, unacked: dict[int, int]) -> dict:
    queues = list(server.vhosts[record.name].queues.values()) if record.name in server.vhosts else []
    ready = sum(queue.message_count for queue in queues)
    unacknowledged = sum(unacked.get(id(queue), 0) for queue in queues)
    node = server.server_properties()["cluster_name"]
    return {"name": record.name, "description": record.description, "tags": list(record.tags),
            "metadata": {"description": record.description, "tags": list(record.tags)},
            "tracing": False, "default_queue_type": "classic", "cluster_state": {node: "running"},
            "messages": ready + unacknowledged, "messages_details": {"rate": 0.0},
            "messages_ready": ready, "messages_ready_details": {"rate": 0.0},
            "messages_unacknowledged": unacknowledged, "messages_unacknowledged_details": {"rate": 0.0},
            "recv_oct": 0, "recv_oct_details": {"rate": 0.0}, "send_oct": 0, "send_oct_details": {"rate": 0.0},
            "message_stats": figures.message_stats(server, record.name)}


async def list_vhosts(call: Call):
    visible = set(call.visible_vhosts())
    unacked = unacked_by_queue(call.server.connections)
    return listed(call.query, [vhost_row(call.server, record, unacked) for record in call.server.admin.list_vhosts()
                               if record.name in visible])


async def show_vhost(call: Call, vhost: str):
    check_vhost_read(call, vhost)
    record = call.server.access.vhosts[vhost]
    return http.answer(vhost_row(call.server, record, unacked_by_queue(call.server.connections)))


def _tag_list(value) -> list[str]:
    """Tags as RabbitMQ takes them: a list, or one string "a,b"."""
    if value is None:
        return []
    if isinstance(value, str):
        return [tag for tag in value.replace(" ", ",").split(",") if tag]
    if isinstance(value, list):
        return [str(tag) for tag in value]
    raise http.bad_request("tags must be a list or a comma-separated string")


async def put_vhost(call: Call, vhost: str):
    document = await http.body(call.request)
    existed = vhost in call.server.access.vhosts
    call.server.admin.add_vhost(call.actor, vhost, http.text(document, "description", ""),
                                _tag_list(document.get("tags")))
    if not existed:
        # RabbitMQ gives the creating user full permissions on a new vhost
        # (rabbit_mgmt_wm_vhost:put_vhost via rabbit_vhost:add)
        call.server.admin.set_permissions(call.actor, call.user.name, vhost, ".*", ".*", ".*")
    return http.no_content() if existed else http.created()


async def delete_vhost(call: Call, vhost: str):
    call.server.admin.delete_vhost(call.actor, vhost)
    forget_vhost(call.server, vhost)
    return http.no_content()


# ---- users --------------------------------------------------------------------

def user_row(server, user) -> dict:
    return {"name": user.name, "password_hash": user.password_hash, "hashing_algorithm": user.hashing_algorithm,
            "tags": list(user.tags), "limits": server.admin.list_user_limits().get(user.name, {})}


def _user(call: Call, name: str):
    user = call.server.access.users.get(name)
    if user is None:
        raise http.not_found()
    return user


async def list_users(call: Call):
    return listed(call.query, [user_row(call.server, user) for user in call.server.admin.list_users()])


async def users_without_permissions(call: Call):
    granted = {p.user for p in call.server.admin.list_permissions()}
    return listed(call.query, [user_row(call.server, user) for user in call.server.admin.list_users()
                               if user.name not in granted])


async def show_user(call: Call, name: str):
    return http.answer(user_row(call.server, _user(call, name)))


async def put_user(call: Call, name: str):
    """Create or update user ``name``: ``password`` or ``password_hash``
    (with ``hashing_algorithm``), and ``tags`` (required by RabbitMQ; a
    missing one is no tags). An existing user gets the new password and tags."""
    document = await http.body(call.request)
    admin = call.server.admin
    tags = _tag_list(document.get("tags"))
    password = document.get("password")
    password_hash = document.get("password_hash")
    existing = call.server.access.users.get(name)
    if existing is None:
        kwargs = {"tags": tags}
        if password_hash is not None and password is None:
            kwargs.update(password_hash=str(password_hash),
                          hashing_algorithm=http.text(document, "hashing_algorithm", SHA256))
        admin.add_user(call.actor, name, None if password is None else str(password), **kwargs)
        return http.created()
    if password is not None:
        admin.set_password(call.actor, name, str(password))
    elif password_hash is not None:
        admin.add_user(call.actor, name, None, tags=tags, password_hash=str(password_hash),
                       hashing_algorithm=http.text(document, "hashing_algorithm", existing.hashing_algorithm),
                       replace=True)
    admin.set_tags(call.actor, name, tags)
    return http.no_content()




async def delete_user(call: Call, name: str):
    call.server.admin.delete_user(call.actor, name)
    forget_user(call.server, name)
    return http.no_content()


async def bulk_delete_users(call: Call):
    document = await http.body(call.request)
    names = document.get("users")
    if not isinstance(names, list):
        raise http.bad_request("users must be a list of user names")
    for name in names:
        if str(name) in call.server.access.users:
            await delete_user(call, str(name))
    return http.no_content()


# ---- permissions --------------------------------------------------------------

def permission_row(p) -> dict:
    return {"user": p.user, "vhost": p.vhost, "configure": p.configure, "write": p.write, "read": p.read}


async def list_permissions(call: Call):
    return listed(call.query, [permission_row(p) for p in call.server.admin.list_permissions()])


async def vhost_permissions(call: Call, vhost: str):
    check_vhost_read(call, vhost)
    return listed(call.query, [permission_row(p) for p in call.server.admin.list_permissions(vhost=vhost)])


async def user_permissions(call: Call, name: str):
    _user(call, name)
    return listed(call.query, [permission_row(p) for p in call.server.admin.list_permissions(user=name)])


async def show_permission(call: Call, vhost: str, user: str):
    found = call.server.admin.list_permissions(vhost=vhost, user=user)
    if not found:
        raise http.not_found()
    return http.answer(permission_row(found[0]))


async def put_permission(call: Call, vhost: str, user: str):
    document = await http.body(call.request)
    if vhost not in call.server.access.vhosts or user not in call.server.access.users:
        raise http.bad_request(f"no such vhost '{vhost}' or user '{user}'")
    existed = bool(call.server.admin.list_permissions(vhost=vhost, user=user))
    call.server.admin.set_permissions(call.actor, user, vhost, http.text(document, "configure"),
                                      http.text(document, "write"), http.text(document, "read"))
    return http.no_content() if existed else http.created()


async def delete_permission(call: Call, vhost: str, user: str):
    if not call.server.admin.list_permissions(vhost=vhost, user=user):
        raise http.not_found()
    call.server.admin.clear_permissions(call.actor, user, vhost)
    return http.no_content()


# ---- limits, parameters, policies ---------------------------------------------

async def vhost_limits(call: Call):
    visible = set(call.visible_vhosts())
    return listed(call.query, [{"vhost": name, "value": limits}
                               for name, limits in call.server.admin.list_vhost_limits().items()
                               if name in visible and limits])


async def user_limits(call: Call):
    return listed(call.query, [{"user": name, "value": limits}
                               for name, limits in call.server.admin.list_user_limits().items() if limits])


async def parameters(call: Call):
    """The kept runtime parameters (no effect in Leveret, see
    broker/admin/definitions.py) of the visible vhosts."""
    visible = set(call.visible_vhosts())
    return listed(call.query, [p for p in export_definitions(call.server)["parameters"] if p["vhost"] in visible])


async def policies(call: Call):
    visible = set(call.visible_vhosts())
    return listed(call.query, [p for p in export_definitions(call.server)["policies"] if p["vhost"] in visible])


# ---- definitions --------------------------------------------------------------

async def get_definitions(call: Call):
    """The definitions document; ``?download=name`` makes it an attachment."""
    response = http.answer(export_definitions(call.server))
    if "download" in call.query:
        response.headers["Content-Disposition"] = f'attachment; filename="{call.query["download"]}"'
    return response


async def _document(call: Call) -> dict:
    """The uploaded document: a JSON body, or the ``file`` field of a form
    (the management UI's upload)."""
    if call.request.content_type == "multipart/form-data":
        form = await call.request.post()
        upload = form.get("file")
        raw = upload.file.read() if hasattr(upload, "file") else str(upload or "")
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise http.bad_request(f"failed to decode JSON: {exc}") from None
        if not isinstance(value, dict):
            raise http.bad_request("a JSON object was expected")
        return value
    return await http.body(call.request)


async def post_definitions(call: Call):
    try:
        import_definitions(call.server, call.actor, await _document(call))
    except DefinitionsError as exc:
        raise http.bad_request(str(exc)) from None
    return http.no_content()


_VHOST_SECTIONS = ("exchanges", "queues", "bindings", "policies", "parameters")


async def get_vhost_definitions(call: Call, vhost: str):
    """The topology of one vhost (RabbitMQ's per-vhost export: exchanges,
    queues, bindings, policies, parameters without their vhost key)."""
    check_vhost_read(call, vhost)
    document = export_definitions(call.server)
    result = {"rabbit_version": document.get("rabbit_version"), "rabbitmq_version": document.get("rabbitmq_version")}
    for section in _VHOST_SECTIONS:
        result[section] = [{k: v for k, v in record.items() if k != "vhost"}
                           for record in document.get(section, []) if record.get("vhost") == vhost]
    return http.answer(result)


async def post_vhost_definitions(call: Call, vhost: str):
    """Import a per-vhost document into ``vhost``: its topology sections
    only, each record put in that vhost."""
    check_vhost_read(call, vhost)
    uploaded = await _document(call)
    document = {section: [dict(record, vhost=vhost) for record in uploaded.get(section) or []
                          if isinstance(record, dict)] for section in _VHOST_SECTIONS}
    try:
        import_definitions(call.server, call.actor, document)
    except DefinitionsError as exc:
        raise http.bad_request(str(exc)) from None
    return http.no_content()
