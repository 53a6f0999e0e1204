"""Where each family's resources live, so a family can link to another without importing it."""

from __future__ import annotations

from racklet.bmc._http.odata import ROOT

SYSTEMS = f"{ROOT}/Systems"
CHASSIS = f"{ROOT}/Chassis"
MANAGERS = f"{ROOT}/Managers"
SESSION_SERVICE = f"{ROOT}/SessionService"
SESSIONS = f"{SESSION_SERVICE}/Sessions"
ACCOUNT_SERVICE = f"{ROOT}/AccountService"
ACCOUNTS = f"{ACCOUNT_SERVICE}/Accounts"
ROLES = f"{ACCOUNT_SERVICE}/Roles"
EVENT_SERVICE = f"{ROOT}/EventService"
UPDATE_SERVICE = f"{ROOT}/UpdateService"
FIRMWARE_INVENTORY = f"{UPDATE_SERVICE}/FirmwareInventory"
TASK_SERVICE = f"{ROOT}/TaskService"
TASKS = f"{TASK_SERVICE}/Tasks"
CERTIFICATE_SERVICE = f"{ROOT}/CertificateService"
REGISTRIES = f"{ROOT}/Registries"
