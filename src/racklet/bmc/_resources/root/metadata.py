"""``$metadata`` and the CSDL files it references, served by the BMC itself at
``/redfish/v1/Schemas/<file>``, so a client needs nothing from outside the BMC to read what
it references. Generated from the same table as every ``@odata.type``
(:data:`racklet.bmc._http.odata.SCHEMA_VERSIONS`), so the two cannot disagree.
"""

from __future__ import annotations

import functools
from importlib import resources

from racklet.bmc._http.odata import CONTAINER, SCHEMA_VERSIONS, SCHEMAS


def metadata_xml() -> str:
    """The CSDL ``$metadata`` document: a reference to each DMTF schema file used."""
    refs = []
    for schema, version in SCHEMA_VERSIONS.items():
        includes = f'    <edmx:Include Namespace="{schema}"/>\n'
        if version:
            includes += f'    <edmx:Include Namespace="{schema}.{version}"/>\n'
        if schema == "ServiceRoot":
            includes += f'    <edmx:Include Namespace="{CONTAINER}"/>\n'
        refs.append(
            f'  <edmx:Reference Uri="{SCHEMAS}/{schema}_v1.xml">\n{includes}  </edmx:Reference>\n'
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">\n'
        + "".join(refs)
        + "  <edmx:DataServices>\n"
        '    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="Service">\n'
        '      <EntityContainer Name="Service" '
        f'Extends="{CONTAINER}.ServiceContainer"/>\n'
        "    </Schema>\n"
        "  </edmx:DataServices>\n"
        "</edmx:Edmx>\n"
    )


def schema_files() -> list[str]:
    """The CSDL files ``$metadata`` references, in its order."""
    return [f"{schema}_v1.xml" for schema in SCHEMA_VERSIONS]


@functools.lru_cache(maxsize=len(SCHEMA_VERSIONS))
def read_schema_file(name: str) -> bytes | None:
    """A bundled CSDL file by its name, None unless ``$metadata`` references it (blocking)."""
    if name not in schema_files():
        return None
    return resources.files("racklet.bmc").joinpath("schemas", name).read_bytes()
