"""Accounts and sessions: the ``AccountService`` (``account_service``) and the
``SessionService`` (``sessions``), the two families the RMC serves with the BMC's code."""
