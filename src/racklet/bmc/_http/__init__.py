"""The HTTP plumbing every Redfish family shares, in one place.

``responses`` (JSON in and out, paging, routes with ``Allow``), ``etags``, ``registry`` (the
DMTF message registries and :class:`~racklet.bmc._http.registry.RedfishErrorReply`),
``odata`` (``@odata`` heads, schema versions), ``auth`` and ``privileges`` (who may call
what), ``idempotency`` (actions done once per key). Nothing here knows a resource family.
"""
