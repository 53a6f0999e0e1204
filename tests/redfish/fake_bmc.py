"""A small Redfish service that behaves like Racklet's BMCs, for client and controller tests.

One Starlette app answers for many units (system and chassis id = unit name). Tests change a
unit's state directly (``bmc.units["unit-1"].last_state = "OSRunning"``) and read back the
resets it received.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from racklet.net import parse_id, peer_identity
from racklet.pki import RackCA

USER, PASSWORD = "admin", "s3cret"


@dataclass
class FakeUnit:
    power_state: str = "Off"
    last_state: str = "None"
    oem_last_state: str | None = None
    failure: str | None = None
    absent: bool = False
    power_watts: float = 0.0
    energy_joules: float = 0.0
    temperature_celsius: float = 25.0
    max_power_watts: float = 6.0
    console: list[str] = field(default_factory=list)


def error(status: int, message: str, extended: bool = True) -> JSONResponse:
    body: dict[str, Any] = {"error": {"code": "Base.1.0.GeneralError", "message": message}}
    if extended:
        body["error"]["@Message.ExtendedInfo"] = [{"Message": message}]
    return JSONResponse(body, status_code=status)


class FakeBmc:
    def __init__(self, *names: str, page_size: int = 3) -> None:
        self.units = {name: FakeUnit() for name in names}
        self.tokens: set[str] = set()
        self.logins = 0
        self.resets: list[tuple[str, str]] = []  # carried out
        self.received: list[tuple[str, str, str | None]] = []  # asked: (unit, type, key)
        self.keys: set[str] = set()
        self.page_size = page_size
        self.defer_resets = False  # True: a reset is accepted but done only by settle()
        self._pending: list[tuple[str, str]] = []
        self.app = Starlette(
            routes=[
                Route("/redfish/v1/SessionService/Sessions", self.login, methods=["POST"]),
                Route("/redfish/v1/SessionService/Sessions/{sid}", self.logout, methods=["DELETE"]),
                Route("/redfish/v1/Systems/{sid}", self.system),
                Route(
                    "/redfish/v1/Systems/{sid}/Actions/ComputerSystem.Reset",
                    self.reset,
                    methods=["POST"],
                ),
                Route("/redfish/v1/Systems/{sid}/LogServices/Console/Entries", self.console),
                Route("/redfish/v1/Chassis/{sid}", self.chassis),
                Route("/redfish/v1/Chassis/{sid}/EnvironmentMetrics", self.environment),
            ]
        )

    def expire_sessions(self) -> None:
        self.tokens.clear()

    def power_on(self, name: str) -> None:
        unit = self.units[name]
        unit.power_state, unit.last_state, unit.oem_last_state, unit.failure = (
            "On",
            "None",
            None,
            None,
        )

    def power_off(self, name: str) -> None:
        unit = self.units[name]
        unit.power_state, unit.last_state, unit.power_watts = "Off", "None", 0.0

    # -- routes -----------------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        body = await request.json()
        if body != {"UserName": USER, "Password": PASSWORD}:
            return error(401, "Invalid credentials.")
        self.logins += 1
        token = secrets.token_hex(8)
        self.tokens.add(token)
        return JSONResponse(
            {"Id": token[:4]},
            status_code=201,
            headers={
                "X-Auth-Token": token,
                "Location": f"/redfish/v1/SessionService/Sessions/{token[:4]}",
            },
        )

    async def logout(self, request: Request) -> Response:
        return Response(status_code=204)

    def _logged_in(self, request: Request) -> bool:
        """A session token, or, as Racklet's BMCs take it, the controller's verified client
        certificate (``spiffe://<rack>/controller``: the controller holds no BMC password)."""
        if request.headers.get("X-Auth-Token") in self.tokens:
            return True
        parsed = parse_id(peer_identity(request.scope))
        return parsed is not None and parsed[1] == "controller"

    def _unit(self, request: Request) -> FakeUnit | Response:
        if not self._logged_in(request):
            return error(401, "Authentication required.", extended=False)
        unit = self.units.get(request.path_params["sid"])
        if unit is None:
            return error(404, f"The resource {request.url.path} was not found.")
        return unit

    async def system(self, request: Request) -> Response:
        unit = self._unit(request)
        if isinstance(unit, Response):
            return unit
        progress: dict[str, Any] = {"LastState": unit.last_state}
        if unit.oem_last_state:
            progress["OemLastState"] = unit.oem_last_state
        conditions = (
            [{"Message": unit.failure, "Severity": "Critical", "MessageId": "Racklet.1.0.Boot"}]
            if unit.failure
            else []
        )
        return JSONResponse(
            {
                "Id": request.path_params["sid"],
                "PowerState": unit.power_state,
                "BootProgress": progress,
                "Status": {
                    "State": "Absent" if unit.absent else "Enabled",
                    "Health": "Critical" if unit.failure else "OK",
                    "Conditions": conditions,
                },
            }
        )

    async def chassis(self, request: Request) -> Response:
        unit = self._unit(request)
        if isinstance(unit, Response):
            return unit
        return JSONResponse(
            {
                "Id": request.path_params["sid"],
                "Status": {"State": "Absent" if unit.absent else "Enabled"},
                "MaxPowerWatts": unit.max_power_watts,
            }
        )

    async def environment(self, request: Request) -> Response:
        unit = self._unit(request)
        if isinstance(unit, Response):
            return unit
        return JSONResponse(
            {
                "PowerWatts": {"Reading": unit.power_watts},
                "EnergyJoules": {"Reading": unit.energy_joules},
                "TemperatureCelsius": {"Reading": unit.temperature_celsius},
            }
        )

    async def reset(self, request: Request) -> Response:
        unit = self._unit(request)
        if isinstance(unit, Response):
            return unit
        name = request.path_params["sid"]
        reset_type = (await request.json()).get("ResetType")
        if reset_type not in ("On", "ForceOff", "GracefulShutdown", "ForceRestart", "PowerCycle"):
            return error(400, f"The value {reset_type} for ResetType is not allowed.")
        key = request.headers.get("Idempotency-Key")
        self.received.append((name, reset_type, key))
        if key is not None and key in self.keys:
            return Response(status_code=204)  # a repeat: done once, as the real BMC does
        if key is not None:
            self.keys.add(key)
        self.resets.append((name, reset_type))
        if self.defer_resets:
            self._pending.append((name, reset_type))
        else:
            self._carry_out(name, reset_type)
        return Response(status_code=204)

    def settle(self) -> None:
        """Carry out the resets accepted while ``defer_resets`` was set (a slow BMC)."""
        pending, self._pending = self._pending, []
        for name, reset_type in pending:
            self._carry_out(name, reset_type)

    def _carry_out(self, name: str, reset_type: str) -> None:
        if reset_type in ("On", "PowerCycle", "ForceRestart"):
            self.power_on(name)
        else:
            self.power_off(name)

    async def console(self, request: Request) -> Response:
        unit = self._unit(request)
        if isinstance(unit, Response):
            return unit
        skip = int(request.query_params.get("$skip", "0"))
        page = unit.console[skip : skip + self.page_size]
        body: dict[str, Any] = {
            "Members": [{"Id": str(skip + i), "Message": line} for i, line in enumerate(page)]
        }
        if skip + self.page_size < len(unit.console):
            body["Members@odata.nextLink"] = f"{request.url.path}?$skip={skip + self.page_size}"
        return JSONResponse(body)


def serves_as_bmcs(ca: RackCA, units: tuple[str, ...] | list[str], directory: Path) -> Path:
    """A certificate for one :class:`FakeBmc` standing in for several BMCs on one port: it
    carries every ``bmc/<unit>`` role, so a controller pinning each unit's BMC accepts it
    (the rack CA itself never issues such a certificate). Returns the key+cert PEM file."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    names += [x509.UniformResourceIdentifier(ca.spiffe_id(f"bmc/{u}")) for u in units]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-bmcs")]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(ca.signer(), hashes.SHA256())
    )
    path = directory / "fake-bmcs.pem"
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(key_pem + cert.public_bytes(serialization.Encoding.PEM))
    path.chmod(0o600)
    return path
