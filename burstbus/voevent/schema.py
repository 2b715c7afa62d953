"""Schema validation of VOEvent packets (2.0, and 1.1 through a 2.0 translation).

Why this exists: Comet validates only what VTP authors send it, so garbage relayed by an
upstream broker flows on to every subscriber and projection. burstbus validates every
packet, whatever its source, so that everything in the log has a known structure.

Choices, and why:

* **One schema, shipped.** ``schema/VOEvent-v2.0.xsd`` is the IVOA VOEvent 2.0 schema (the
  copy Comet ships; it imports nothing, so validation never touches the network).
* **VOEvent 1.1 via translation.** GCN still sends 1.1, but no 1.1 XSD (and no STC 1.30 XSD
  it imports) is available offline. The two versions differ only in the root namespace and
  the ``version`` attribute, and in ``WhereWhen``: 1.1 embeds STC 1.30 elements in the
  namespace ``http://www.ivoa.net/xml/STC/stc-v1.30.xsd`` (ObsDataLocation, ObservationLocation,
  AstroCoordSystem, AstroCoords, Time, Position2D, C1/C2...), carrying ``xlink:href``/
  ``xlink:type`` attributes and free-form coordinate-system ids (GCN's Fermi 1.1 packets say
  ``id="FK5-UTC-GEO"`` with ``xlink:href="ivo://STClib/CoordSys#UTC-FK5-GEO/"``). 2.0 has the
  same element names unqualified, no xlink, and an enumeration of system ids. So a 1.1 packet
  is validated by translating a *copy* of its tree to that 2.0 form (namespace and version of
  the root; STC elements unqualified; attributes 2.0 does not define dropped; a non-standard
  system id replaced by the STClib name in its ``xlink:href``) and validating the copy with the
  2.0 schema. The packet itself (tree and bytes) is never changed. A 1.1 packet that defines its
  own coordinate system inline (legal STC, never seen in real traffic) is refused.
* **Known harmless deviations of real notices are tolerated, and reported.** Real GCN notices
  break the 2.0 schema in three ways that carry no structural risk: GECAM writes
  ``Param/@datatype`` (lower case), ANTARES writes ``dataType="bool"``, and IPN "Raw" notices
  keep stray ``//`` text inside ``What/Group``. Refusing them would lose real burst alerts, so
  when (and only when) the strict check fails, a copy with just those deviations neutralised is
  validated; if that passes, the packet is accepted and :func:`validate` returns a note for
  each deviation. Anything else fails with the *strict* check's first error and line.
* **Thread safety.** Validation is CPU-heavy and runs in a thread pool. lxml creates a fresh
  libxml2 validation context per call, but an ``XMLSchema`` object keeps one shared error log
  that every call clears and fills while the GIL is released, so concurrent calls would mix up
  their error messages. Each thread therefore compiles its own ``XMLSchema`` once
  (:class:`threading.local`) and reuses it. Nothing here touches asyncio.
"""

from __future__ import annotations

import copy
import threading
from importlib import resources

from lxml import etree

from .errors import VOEventRejected

__all__ = [
    "V1_1_NS",
    "V2_0_NS",
    "STC_1_30_NS",
    "voevent_version",
    "validate",
]

V2_0_NS = "http://www.ivoa.net/xml/VOEvent/v2.0"
V1_1_NS = "http://www.ivoa.net/xml/VOEvent/v1.1"
STC_1_30_NS = "http://www.ivoa.net/xml/STC/stc-v1.30.xsd"
XLINK_NS = "http://www.w3.org/1999/xlink"

_VERSION_OF_NS = {V2_0_NS: "2.0", V1_1_NS: "1.1"}

_SCHEMA_BYTES: bytes = resources.files(__package__).joinpath("schema/VOEvent-v2.0.xsd").read_bytes()

#: AstroCoordSystem ids the 2.0 schema enumerates (read from the shipped XSD).
_SYSTEM_IDS: frozenset[str] = frozenset(
    etree.fromstring(_SCHEMA_BYTES).xpath(
        "//xs:simpleType[@name='idValues']//xs:enumeration/@value",
        namespaces={"xs": "http://www.w3.org/2001/XMLSchema"},
    )
)

#: Attributes the 2.0 schema allows on the STC-derived elements of WhereWhen.
_STC_ATTRIBUTES: dict[str, frozenset[str]] = {
    "ObservatoryLocation": frozenset({"id"}),
    "AstroCoordSystem": frozenset({"id"}),
    "AstroCoords": frozenset({"coord_system_id"}),
    "Time": frozenset({"unit"}),
    "Position2D": frozenset({"unit"}),
    "Position3D": frozenset({"unit"}),
    "WhereWhen": frozenset({"id"}),
}

_DATA_TYPES = frozenset({"string", "float", "int"})

_local = threading.local()
#: Compiling a schema is not thread-safe in libxml2: its built-in type tables are set up on
#: first use, and two threads compiling at once failed here with "XMLSchemaParseError:
#: Internal error: xmlSchemaPValAttrNodeValue" (and once crashed with a double free).
#: Validation with a compiled schema is thread-safe per schema object; only compiling is locked.
_compile_lock = threading.Lock()


def _schema() -> etree.XMLSchema:
    """This thread's compiled VOEvent 2.0 schema (compiled once per thread, one thread at a time)."""
    schema = getattr(_local, "schema", None)
    if schema is None:
        with _compile_lock:
            parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
            schema = etree.XMLSchema(etree.fromstring(_SCHEMA_BYTES, parser))
        _local.schema = schema
    return schema


def _split(tag: str) -> tuple[str | None, str]:
    """Split a Clark-notation tag into (namespace or None, local name)."""
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return None, tag


def voevent_version(root: etree._Element) -> str:
    """Return "2.0" or "1.1" for a VOEvent root, else raise ``VOEventRejected(code="version")``.

    The root must be ``VOEvent`` in the 2.0 or 1.1 namespace and its ``version`` attribute
    must agree with that namespace.
    """
    tag = root.tag if isinstance(root.tag, str) else ""
    ns, local = _split(tag)
    expected = f"{V2_0_NS} or {V1_1_NS}"
    if local != "VOEvent":
        raise VOEventRejected(
            f"not a VOEvent: root element is <{local or '?'}> "
            f"(namespace: {ns or 'none'}); expected VOEvent in {expected}",
            "version",
        )
    version = _VERSION_OF_NS.get(ns or "")
    if version is None:
        raise VOEventRejected(
            f"root element VOEvent is in the wrong namespace (found: {ns or 'none'}); "
            f"expected {expected}",
            "version",
        )
    declared = root.get("version")
    if declared is None or declared.strip() != version:
        raise VOEventRejected(
            f"version attribute {declared!r} does not match the VOEvent {version} namespace",
            "version",
        )
    return version


def _first_error(schema: etree.XMLSchema) -> str:
    """The first error of the schema's last validation, as "line N: message"."""
    log = schema.error_log
    errors = log.filter_from_errors() or log
    if not errors:
        return "invalid (no detail from the validator)"
    err = errors[0]
    return f"line {err.line}: {err.message}"


def _to_2_0_form(tree: etree._Element) -> None:
    """Translate a copied 1.1 tree in place into the 2.0 form (see module docstring)."""
    tree.tag = f"{{{V2_0_NS}}}VOEvent"
    tree.set("version", "2.0")
    renamed_systems: dict[str, str] = {}
    for el in tree.iter():
        tag = el.tag
        if not isinstance(tag, str):
            continue
        ns, local = _split(tag)
        if el is not tree and ns in (STC_1_30_NS, V1_1_NS):
            el.tag = local
        allowed = _STC_ATTRIBUTES.get(local, frozenset()) if ns == STC_1_30_NS else None
        for name in list(el.attrib):
            attr_ns, _attr_local = _split(name)
            if attr_ns == XLINK_NS and name != f"{{{XLINK_NS}}}href":
                del el.attrib[name]
            elif allowed is not None and name not in allowed and attr_ns != XLINK_NS:
                del el.attrib[name]
        if local == "AstroCoordSystem":
            sys_id = el.get("id")
            href = el.get(f"{{{XLINK_NS}}}href") or ""
            named = href.rpartition("#")[2].strip("/")
            if sys_id not in _SYSTEM_IDS and named in _SYSTEM_IDS:
                if sys_id:
                    renamed_systems[sys_id] = named
                el.set("id", named)
        el.attrib.pop(f"{{{XLINK_NS}}}href", None)
    if renamed_systems:
        for coords in tree.iter("AstroCoords"):
            ref = coords.get("coord_system_id")
            if ref in renamed_systems:
                coords.set("coord_system_id", renamed_systems[ref])


def _neutralise_quirks(tree: etree._Element) -> list[str]:
    """Neutralise the known harmless deviations of real notices in a copied tree.

    Returns one note per kind of deviation found (empty if none).
    """
    notes: list[str] = []

    def note(text: str) -> None:
        if text not in notes:
            notes.append(text)

    for el in tree.iter("Param", "Group", "What"):
        if el.tag == "Param":
            for name in list(el.attrib):
                if name.lower() == "datatype" and name != "dataType":
                    del el.attrib[name]
                    note(f"Param attribute {name!r} ignored (the schema spells it 'dataType')")
            data_type = el.get("dataType")
            if data_type is not None and data_type not in _DATA_TYPES:
                del el.attrib["dataType"]
                note(f"Param dataType={data_type!r} ignored (not string/float/int)")
        else:
            if el.text and el.text.strip():
                el.text = None
                note(f"stray text inside {el.tag} ignored")
            for child in el:
                if child.tail and child.tail.strip():
                    child.tail = None
                    note(f"stray text inside {el.tag} ignored")
    return notes


def validate(root: etree._Element) -> tuple[str, ...]:
    """Validate a VOEvent tree; raise ``VOEventRejected(code="schema")`` if it is invalid.

    Returns the notes for tolerated deviations (usually an empty tuple). Raises
    ``VOEventRejected(code="version")`` if the root is not a 2.0/1.1 VOEvent. The tree passed
    in is never modified.
    """
    version = voevent_version(root)
    schema = _schema()
    if version == "2.0":
        if schema.validate(root):
            return ()
        strict_error = _first_error(schema)
        candidate = copy.deepcopy(root)
        label = "schema"
    else:
        candidate = copy.deepcopy(root)
        _to_2_0_form(candidate)
        if schema.validate(candidate):
            return ()
        strict_error = _first_error(schema)
        label = "schema (VOEvent 1.1 checked in its 2.0 form)"
    notes = _neutralise_quirks(candidate)
    if notes and schema.validate(candidate):
        return tuple(notes)
    raise VOEventRejected(f"{label}: {strict_error}", "schema")
